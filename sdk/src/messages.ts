// What the operator reads when something goes wrong or the browser is about to ask: every
// sentence in zh-CN first, then zh-TW and English. Each says what happens next or what to do.

export type Locale = 'zh-CN' | 'zh-TW' | 'en'

export const LOCALES: readonly Locale[] = ['zh-CN', 'zh-TW', 'en']

/** One sentence in each language. `{n}` is replaced by a number where a message has one. */
export type Text = Readonly<Record<Locale, string>>

/** Error codes the bridge sends in `error.data.code`. */
export type BridgeErrorCode =
  | 'INVALID_REQUEST'
  | 'METHOD_NOT_FOUND'
  | 'INVALID_ARGUMENT'
  | 'ORIGIN_NOT_ALLOWED'
  | 'USER_CANCELLED'
  | 'USER_TIMEOUT'
  | 'KEY_NOT_FOUND'
  | 'KEY_AMBIGUOUS'
  | 'KEY_REMOVED'
  | 'PIN_LOCKED'
  | 'PIN_INCORRECT'
  | 'FINAL_TRY_UNCONFIRMED'
  | 'ACTION_PENDING'
  | 'NOT_SUPPORTED'
  | 'TOKEN_ERROR'
  | 'INTERNAL_ERROR'

/** Error codes the SDK itself raises, before or around the bridge. */
export type SdkErrorCode =
  | 'NEEDS_USER_GESTURE'
  | 'INSECURE_ORIGIN'
  | 'LOCAL_NETWORK_DENIED'
  | 'BRIDGE_UNREACHABLE'
  | 'NOT_CONNECTED'
  | 'CONNECTION_LOST'
  | 'TIMEOUT'
  | 'BAD_ANSWER'

export type ErrorCode = BridgeErrorCode | SdkErrorCode

export const BRIDGE_ERROR_CODES: readonly BridgeErrorCode[] = [
  'INVALID_REQUEST',
  'METHOD_NOT_FOUND',
  'INVALID_ARGUMENT',
  'ORIGIN_NOT_ALLOWED',
  'USER_CANCELLED',
  'USER_TIMEOUT',
  'KEY_NOT_FOUND',
  'KEY_AMBIGUOUS',
  'KEY_REMOVED',
  'PIN_LOCKED',
  'PIN_INCORRECT',
  'FINAL_TRY_UNCONFIRMED',
  'ACTION_PENDING',
  'NOT_SUPPORTED',
  'TOKEN_ERROR',
  'INTERNAL_ERROR',
]

export const SDK_ERROR_CODES: readonly SdkErrorCode[] = [
  'NEEDS_USER_GESTURE',
  'INSECURE_ORIGIN',
  'LOCAL_NETWORK_DENIED',
  'BRIDGE_UNREACHABLE',
  'NOT_CONNECTED',
  'CONNECTION_LOST',
  'TIMEOUT',
  'BAD_ANSWER',
]

export const ERROR_TEXT: Readonly<Record<ErrorCode, Text>> = {
  INVALID_REQUEST: {
    'zh-CN': '网页向 Keyward 发送了无法识别的请求。请联系本网站的技术支持。',
    'zh-TW': '網頁向 Keyward 傳送了無法識別的請求。請聯絡本網站的技術支援。',
    en: 'The page sent Keyward a request it cannot read. Contact this site’s support.',
  },
  METHOD_NOT_FOUND: {
    'zh-CN': '您电脑上的 Keyward 版本不支持此功能。请升级 Keyward 后重试。',
    'zh-TW': '您電腦上的 Keyward 版本不支援此功能。請升級 Keyward 後重試。',
    en: 'The Keyward on this computer does not offer this. Update Keyward and try again.',
  },
  INVALID_ARGUMENT: {
    'zh-CN': '网页传给 Keyward 的参数有误。请联系本网站的技术支持。',
    'zh-TW': '網頁傳給 Keyward 的參數有誤。請聯絡本網站的技術支援。',
    en: 'The page passed Keyward a wrong argument. Contact this site’s support.',
  },
  ORIGIN_NOT_ALLOWED: {
    'zh-CN':
      'Keyward 没有允许本网站使用 USB Key。请在 Keyward 窗口中选择“允许”；如果您曾选择“拒绝”，请稍后再试，或在 Keyward 的“设置与关于”中修改。',
    'zh-TW':
      'Keyward 沒有允許本網站使用 USB Key。請在 Keyward 視窗中選擇「允許」；如果您曾選擇「拒絕」，請稍後再試，或在 Keyward 的「設定與關於」中修改。',
    en: 'Keyward has not allowed this site to use the USB key. Choose “Allow” in Keyward’s window; if you chose “Deny”, try again later or change it in Keyward’s Settings.',
  },
  USER_CANCELLED: {
    'zh-CN': '您在 Keyward 中取消了本次操作。需要时请重新操作。',
    'zh-TW': '您在 Keyward 中取消了本次操作。需要時請重新操作。',
    en: 'You cancelled this in Keyward. Start again when you are ready.',
  },
  USER_TIMEOUT: {
    'zh-CN': 'Keyward 等待您确认超过 2 分钟，本次操作已取消。请重新操作。',
    'zh-TW': 'Keyward 等待您確認超過 2 分鐘，本次操作已取消。請重新操作。',
    en: 'Keyward waited 2 minutes for your confirmation and gave up. Start again.',
  },
  KEY_NOT_FOUND: {
    'zh-CN': '没有找到带机构证书的 USB Key。请插入 USB Key 后重试。',
    'zh-TW': '沒有找到帶機構憑證的 USB Key。請插入 USB Key 後重試。',
    en: 'No USB key with an organisation certificate was found. Plug it in and try again.',
  },
  KEY_AMBIGUOUS: {
    'zh-CN': '插入了多个 USB Key。请先选择要使用的证书。',
    'zh-TW': '插入了多個 USB Key。請先選擇要使用的憑證。',
    en: 'Several USB keys are plugged in. Choose the certificate to use first.',
  },
  KEY_REMOVED: {
    'zh-CN': 'USB Key 在操作过程中被拔出。请重新插入后重试。',
    'zh-TW': 'USB Key 在操作過程中被拔出。請重新插入後重試。',
    en: 'The USB key was pulled out during the operation. Plug it back in and try again.',
  },
  PIN_LOCKED: {
    'zh-CN': 'USB Key 的密码已锁定。请在 Keyward 中使用“忘记密码”解锁后再来。',
    'zh-TW': 'USB Key 的密碼已鎖定。請在 Keyward 中使用「忘記密碼」解鎖後再來。',
    en: 'The USB key’s PIN is locked. Unlock it in Keyward (Forgot PIN), then come back.',
  },
  PIN_INCORRECT: {
    'zh-CN': 'USB Key 密码错误，还可以尝试 {n} 次。连续输错 10 次会锁定证书。',
    'zh-TW': 'USB Key 密碼錯誤，還可以嘗試 {n} 次。連續輸錯 10 次會鎖定憑證。',
    en: 'Wrong PIN: {n} tries left. Ten wrong PINs in a row lock the certificate.',
  },
  FINAL_TRY_UNCONFIRMED: {
    'zh-CN': '密码只剩最后一次机会，您没有确认使用。建议先在 Keyward 中使用“忘记密码”。',
    'zh-TW': '密碼只剩最後一次機會，您沒有確認使用。建議先在 Keyward 中使用「忘記密碼」。',
    en: 'Only one PIN try is left and you did not confirm spending it. Consider Forgot PIN in Keyward first.',
  },
  ACTION_PENDING: {
    'zh-CN': 'Keyward 中还有一个操作在等待您确认。请先在 Keyward 窗口中完成或取消它。',
    'zh-TW': 'Keyward 中還有一個操作在等待您確認。請先在 Keyward 視窗中完成或取消它。',
    en: 'Another operation is waiting for you in Keyward. Finish or cancel it there first.',
  },
  NOT_SUPPORTED: {
    'zh-CN': '当前运行的 Keyward 没有窗口，无法完成此操作。请打开 Keyward 客户端后在其中操作。',
    'zh-TW': '目前執行的 Keyward 沒有視窗，無法完成此操作。請開啟 Keyward 用戶端後在其中操作。',
    en: 'The Keyward running here has no window and cannot do this. Open the Keyward app and do it there.',
  },
  TOKEN_ERROR: {
    'zh-CN': 'USB Key 操作失败。请拔出后重新插入再试；仍失败请联系 CA 客服。',
    'zh-TW': 'USB Key 操作失敗。請拔出後重新插入再試；仍失敗請聯絡 CA 客服。',
    en: 'The USB key failed. Pull it out, plug it back in and try again; if it still fails, call the CA’s support.',
  },
  INTERNAL_ERROR: {
    'zh-CN': 'Keyward 内部出错。请重试；仍失败请联系 CA 客服。',
    'zh-TW': 'Keyward 內部出錯。請重試；仍失敗請聯絡 CA 客服。',
    en: 'Something failed inside Keyward. Try again; if it still fails, call the CA’s support.',
  },
  NEEDS_USER_GESTURE: {
    'zh-CN': '请点击页面上的按钮来连接 Keyward。',
    'zh-TW': '請點擊頁面上的按鈕來連接 Keyward。',
    en: 'Click the button on the page to connect to Keyward.',
  },
  INSECURE_ORIGIN: {
    'zh-CN': '本页面不是通过安全连接（https）打开的，不能使用 USB Key。请使用以 https:// 开头的网址。',
    'zh-TW': '本頁面不是透過安全連線（https）開啟的，不能使用 USB Key。請使用以 https:// 開頭的網址。',
    en: 'This page was not opened over a secure connection (https) and cannot use the USB key. Use the https:// address.',
  },
  LOCAL_NETWORK_DENIED: {
    'zh-CN':
      '浏览器阻止了本网站连接您电脑上的 Keyward（本地网络访问被拒绝）。请点击地址栏左侧的网站信息图标，打开“网站设置”，把“本地网络访问”（或“访问此设备上的应用和服务”）改为“允许”，然后刷新本页面再试。如果浏览器由单位统一管理，请联系管理员允许本网站。',
    'zh-TW':
      '瀏覽器阻止了本網站連接您電腦上的 Keyward（本機網路存取被拒絕）。請點擊網址列左側的網站資訊圖示，開啟「網站設定」，把「本機網路存取」（或「存取此裝置上的應用程式和服務」）改為「允許」，然後重新整理本頁面再試。如果瀏覽器由單位統一管理，請聯絡管理員允許本網站。',
    en: 'The browser stopped this site from reaching Keyward on this computer (local network access was refused). Click the site information icon left of the address, open Site settings, set “Local network access” (or “Apps and services on this device”) to Allow, then reload this page. If your organisation manages the browser, ask its administrator to allow this site.',
  },
  BRIDGE_UNREACHABLE: {
    'zh-CN': '无法连接到 Keyward。请确认电脑上已安装并打开 Keyward 客户端，然后重试。',
    'zh-TW': '無法連接到 Keyward。請確認電腦上已安裝並開啟 Keyward 用戶端，然後重試。',
    en: 'Keyward cannot be reached. Make sure the Keyward app is installed and running on this computer, then try again.',
  },
  NOT_CONNECTED: {
    'zh-CN': '还没有连接 Keyward。请先点击“连接 Keyward”。',
    'zh-TW': '還沒有連接 Keyward。請先點擊「連接 Keyward」。',
    en: 'Not connected to Keyward yet. Click “Connect to Keyward” first.',
  },
  CONNECTION_LOST: {
    'zh-CN': '与 Keyward 的连接断开了。请确认 Keyward 仍在运行，然后重新连接。',
    'zh-TW': '與 Keyward 的連線中斷了。請確認 Keyward 仍在執行，然後重新連接。',
    en: 'The connection to Keyward was lost. Make sure Keyward is still running, then connect again.',
  },
  TIMEOUT: {
    'zh-CN': 'Keyward 长时间没有回应。请查看 Keyward 窗口，然后重试。',
    'zh-TW': 'Keyward 長時間沒有回應。請查看 Keyward 視窗，然後重試。',
    en: 'Keyward did not answer for a long time. Look at Keyward’s window, then try again.',
  },
  BAD_ANSWER: {
    'zh-CN': 'Keyward 的回应无法识别。请升级 Keyward 后重试。',
    'zh-TW': 'Keyward 的回應無法識別。請升級 Keyward 後重試。',
    en: 'Keyward’s answer could not be read. Update Keyward and try again.',
  },
}

/** A wrong PIN when the key does not say how many tries are left. */
export const PIN_INCORRECT_UNCOUNTED: Text = {
  'zh-CN': 'USB Key 密码错误。连续输错 10 次会锁定证书。',
  'zh-TW': 'USB Key 密碼錯誤。連續輸錯 10 次會鎖定憑證。',
  en: 'Wrong PIN. Ten wrong PINs in a row lock the certificate.',
}

/** A wrong PIN with one try left. */
export const PIN_INCORRECT_FINAL: Text = {
  'zh-CN': 'USB Key 密码错误，只剩最后一次机会。再输错一次证书就会锁定，建议先在 Keyward 中使用“忘记密码”。',
  'zh-TW': 'USB Key 密碼錯誤，只剩最後一次機會。再輸錯一次憑證就會鎖定，建議先在 Keyward 中使用「忘記密碼」。',
  en: 'Wrong PIN, and only one try is left: one more wrong PIN locks the certificate. Consider Forgot PIN in Keyward first.',
}

/** The origin was refused and is cooling off. */
export const ORIGIN_COOLING_OFF: Text = {
  'zh-CN': 'Keyward 刚刚拒绝了本网站使用 USB Key。请 {n} 秒后再试，或在 Keyward 的“设置与关于”中修改。',
  'zh-TW': 'Keyward 剛剛拒絕了本網站使用 USB Key。請 {n} 秒後再試，或在 Keyward 的「設定與關於」中修改。',
  en: 'Keyward just refused this site the USB key. Try again in {n} seconds, or change it in Keyward’s Settings.',
}

/** What the browser's Local Network Access question means, before it is asked. */
export const LNA_PROMPT: { title: Text; body: Text } = {
  title: {
    'zh-CN': '浏览器会询问是否允许本网站访问本机',
    'zh-TW': '瀏覽器會詢問是否允許本網站存取本機',
    en: 'The browser will ask whether this site may reach this computer',
  },
  body: {
    'zh-CN':
      '本网站要通过您电脑上的 Keyward 客户端使用 USB Key（证书）。连接时，浏览器会询问是否允许本网站“访问此设备上的应用和服务”或“本地网络访问”，请选择“允许”。这只让本网站与本机的 Keyward 通信：每次登录和签名都会在 Keyward 自己的窗口中请您确认，USB Key 密码只在 Keyward 中输入，网页看不到。',
    'zh-TW':
      '本網站要透過您電腦上的 Keyward 用戶端使用 USB Key（憑證）。連接時，瀏覽器會詢問是否允許本網站「存取此裝置上的應用程式和服務」或「本機網路存取」，請選擇「允許」。這只讓本網站與本機的 Keyward 通訊：每次登入和簽章都會在 Keyward 自己的視窗中請您確認，USB Key 密碼只在 Keyward 中輸入，網頁看不到。',
    en: 'This site uses your USB key (certificate) through the Keyward app on this computer. When it connects, the browser asks whether the site may reach “apps and services on this device” (local network access): choose Allow. That only lets this site talk to Keyward here: Keyward asks you in its own window before every login and signature, and the PIN is typed into Keyward, never into the page.',
  },
}

/** The browser already allows the connection. */
export const LNA_GRANTED: Text = {
  'zh-CN': '浏览器已允许本网站连接本机的 Keyward。',
  'zh-TW': '瀏覽器已允許本網站連接本機的 Keyward。',
  en: 'The browser already lets this site reach Keyward on this computer.',
}

/** The browser says nothing either way (it has no such permission, or cannot tell). */
export const LNA_UNKNOWN: Text = {
  'zh-CN': '本网站将连接您电脑上的 Keyward 客户端。如果浏览器询问是否允许访问本机或本地网络，请选择“允许”。',
  'zh-TW': '本網站將連接您電腦上的 Keyward 用戶端。如果瀏覽器詢問是否允許存取本機或本機網路，請選擇「允許」。',
  en: 'This site will connect to the Keyward app on this computer. If the browser asks whether it may reach this device or the local network, choose Allow.',
}

/** The text in `locale`, `{n}` replaced by `n`. */
export function say(text: Text, locale: Locale, n?: number): string {
  const s = text[locale] ?? text['zh-CN']
  return n === undefined ? s : s.replaceAll('{n}', String(n))
}
