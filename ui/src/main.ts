import { createApp } from 'vue'
import App from './App.vue'
import { makeRouter } from './router'
import { setLang } from './i18n'
import { settingsGet } from './ipc'
import { startKeys } from './keys'
import './styles.css'

// The start's steps as performance marks, for the start bench's page timeline.
const mark = (name: string) => performance.mark(`keyward:${name}`)

async function boot() {
  mark('boot')
  // The keys are asked for at once, beside the settings rather than after them: Home shows
  // them as soon as the window is up and they have come.
  void startKeys().then(() => mark('keys'))
  try {
    setLang((await settingsGet()).language)
  } catch {
    setLang('zh-CN')
  }
  mark('settings')
  createApp(App).use(makeRouter()).mount('#app')
  mark('mounted')
}

void boot()
