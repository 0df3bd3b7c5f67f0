import { createRouter, createWebHashHistory } from 'vue-router'
import HomeView from './views/HomeView.vue'
import CertificateView from './views/CertificateView.vue'
import SettingsView from './views/SettingsView.vue'
import ActivateView from './views/ActivateView.vue'
import RenewView from './views/RenewView.vue'
import SealView from './views/SealView.vue'
import ProgressView from './views/ProgressView.vue'
import UnlockView from './views/UnlockView.vue'
import StampView from './views/StampView.vue'
import DoctorView from './views/DoctorView.vue'

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
