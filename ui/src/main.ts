import { createApp } from 'vue'
import App from './App.vue'
import { makeRouter } from './router'
import { setLang } from './i18n'
import { settingsGet } from './ipc'
import { startKeys } from './keys'
import './styles.css'

async function boot() {
  try {
    setLang((await settingsGet()).language)
  } catch {
    setLang('zh-CN')
  }
  createApp(App).use(makeRouter()).mount('#app')
  void startKeys()
}

void boot()
