import { createRouter, createWebHashHistory } from 'vue-router'
import HomeView from './views/HomeView.vue'

// Home is in the first bundle: it is what the window opens on. Every other screen is its
// own chunk, loaded from disk the first time it is opened (a few milliseconds), so the web
// view parses and keeps only what the operator has used.
const CertificateView = () => import('./views/CertificateView.vue')
const SettingsView = () => import('./views/SettingsView.vue')
const ActivateView = () => import('./views/ActivateView.vue')
const RenewView = () => import('./views/RenewView.vue')
const SealView = () => import('./views/SealView.vue')
const ProgressView = () => import('./views/ProgressView.vue')
const StampView = () => import('./views/StampView.vue')
const UnlockView = () => import('./views/UnlockView.vue')
const DoctorView = () => import('./views/DoctorView.vue')

export const routes = [
  { path: '/', name: 'home', component: HomeView },
  { path: '/activate', name: 'activate', component: ActivateView },
  { path: '/cert/:serial?', name: 'cert', component: CertificateView, props: true },
  { path: '/unlock/:serial?', name: 'unlock', component: UnlockView, props: true },
  { path: '/renew', name: 'renew', component: RenewView },
  { path: '/seal', name: 'seal', component: SealView },
  { path: '/stamp', name: 'stamp', component: StampView },
  { path: '/progress', name: 'progress', component: ProgressView },
  { path: '/settings', name: 'settings', component: SettingsView },
  { path: '/doctor', name: 'doctor', component: DoctorView },
]

export function makeRouter() {
  return createRouter({ history: createWebHashHistory(), routes, scrollBehavior: () => ({ top: 0 }) })
}
