import { createApp } from 'vue'
import App from './App.vue'
import { makeRouter } from './router'
import { setLang } from './i18n'
import { settingsGet } from './ipc'
import { startKeys } from './keys'
import './styles.css'

async function boot() {
  // The keys are asked for at once, beside the settings rather than after them: Home shows
  // them as soon as the window is up and they have come.
  void startKeys()
  try {
    setLang((await settingsGet()).language)
  } catch {
    setLang('zh-CN')
  }
  createApp(App).use(makeRouter()).mount('#app')
}

void boot()
