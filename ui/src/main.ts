import { createApp } from 'vue'
import App from './App.vue'
import { makeRouter } from './router'
import { setLang, storedLang } from './i18n'
import { settingsGet } from './ipc'
import { startKeys } from './keys'
import './styles.css'

// The start's steps as performance marks, for the start bench's page timeline.
const mark = (name: string) => performance.mark(`keyward:${name}`)

// How long the first paint waits for the keys at most.
const FIRST_PAINT_WAIT_MS = 150

async function boot() {
  mark('boot')
  // The keys are asked for at once, beside the settings: Home shows them as soon as the
  // window is up and they have come.
  // (A failure to subscribe never keeps the window from painting: Home says what failed.)
  const listed = startKeys().then(
    () => mark('keys'),
    () => undefined,
  )
  // The window opens in the language it last showed, without waiting for the settings; the
  // settings' language follows if it has changed since (the CLI can change it).
  // An unreadable settings file leaves the window in the language it opened in.
  const settings = settingsGet().then(
    (s) => s.language,
    () => null,
  )
  await setLang(storedLang() ?? 'zh-CN')
  // The first paint waits a moment for the keys (they come within milliseconds from a
  // driver that answers at once), so Home opens on them rather than on a line saying they
  // are being read, changed a moment later; a slow driver gets that line after the wait.
  await Promise.race([listed, new Promise((r) => setTimeout(r, FIRST_PAINT_WAIT_MS))])
  createApp(App).use(makeRouter()).mount('#app')
  mark('mounted')
  const chosen = await settings
  if (chosen) await setLang(chosen)
  mark('settings')
}

void boot()
