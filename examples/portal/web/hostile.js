// A site beside the portal that the operator never granted: it tries to read the key's
// certificates through the same SDK and must get nothing.

import { KeywardBridge, KeywardError, createSof } from '/sdk/index.js'

const url = document.querySelector('meta[name="keyward-bridge"]').content
const bridge = new KeywardBridge({ url })
const sof = createSof(bridge)
window.keywardHostile = { bridge, sof }

document.getElementById('steal').addEventListener('click', () => {
  const out = document.getElementById('hostile-result')
  bridge
    .connect()
    .then(() => bridge.certificates())
    .then(
      (list) => {
        out.textContent = `读到了 ${list.length} 张证书`
        out.dataset.code = 'ok'
        out.dataset.count = String(list.length)
      },
      (e) => {
        out.textContent = e instanceof KeywardError ? e.message : String(e)
        out.dataset.code = e instanceof KeywardError ? e.code : 'error'
      },
    )
})
