//! What each finding says, in zh-CN, zh-TW and English.

use keyward_pki::Lang;

use super::Fact;

/// The message and the fix of a finding.
pub(super) fn say(fact: &Fact, lang: Lang) -> (String, Option<String>) {
    use Lang::{En, ZhCn, ZhTw};
    let t = |cn: String, tw: String, en: String| match lang {
        ZhCn => cn,
        ZhTw => tw,
        En => en,
    };
    match fact {
        Fact::DriverMissing {
            vendor,
            model,
            usb,
            module,
        } => {
            let file = module.clone().unwrap_or_default();
            let sp = if file.is_empty() { "" } else { " " };
            (
                t(
                    format!("已插入 {vendor} {model}（{usb}），但未安装其驱动{sp}{file}"),
                    format!("已插入 {vendor} {model}（{usb}），但未安裝其驅動{sp}{file}"),
                    format!(
                        "{vendor} {model} ({usb}) is plugged in, but its driver{sp}{file} is not installed"
                    ),
                ),
                Some(t(
                    "请安装证书服务机构提供的该 USB Key 的驱动，然后重新插入 USB Key".into(),
                    "請安裝憑證服務機構提供的該 USB Key 的驅動，然後重新插入 USB Key".into(),
                    "install the driver for this key from your CA, then plug the key in again"
                        .into(),
                )),
            )
        }
        Fact::DriverWrongArch {
            path,
            module_arch,
            host_arch,
        } => (
            t(
                format!("驱动 {path} 适用于 {module_arch}，本机为 {host_arch}"),
                format!("驅動 {path} 適用於 {module_arch}，本機為 {host_arch}"),
                format!("the driver {path} is for {module_arch}; this computer is {host_arch}"),
            ),
            Some(t(
                format!("请安装适用于 {host_arch} 的驱动"),
                format!("請安裝適用於 {host_arch} 的驅動"),
                format!("install the driver built for {host_arch}"),
            )),
        ),
        Fact::KeyReady { vendor, model, usb } => (
            t(
                format!("{vendor} {model}（{usb}）已插入，驱动正常"),
                format!("{vendor} {model}（{usb}）已插入，驅動正常"),
                format!("{vendor} {model} ({usb}) is plugged in and its driver works"),
            ),
            None,
        ),
        Fact::KeyNotSeen { vendor, model, usb } => (
            t(
                format!("已插入 {vendor} {model}（{usb}），驱动已加载，但未读到该 USB Key"),
                format!("已插入 {vendor} {model}（{usb}），驅動已載入，但未讀到該 USB Key"),
                format!(
                    "{vendor} {model} ({usb}) is plugged in and its driver loads, but the driver does not see the key"
                ),
            ),
            Some(t(
                "请拔下 USB Key 后重新插入；仍不行请换一个 USB 接口".into(),
                "請拔下 USB Key 後重新插入；仍不行請換一個 USB 連接埠".into(),
                "unplug the key and plug it in again; if that does not help, try another USB port"
                    .into(),
            )),
        ),
        Fact::UnknownCcid { usb, product } => (
            t(
                format!("插入了未知的智能卡设备 {product}（{usb}）"),
                format!("插入了未知的智慧卡裝置 {product}（{usb}）"),
                format!("an unknown smart-card device {product} ({usb}) is plugged in"),
            ),
            None,
        ),
        Fact::PcscdMissing { needed } => (
            t(
                "智能卡服务 pcscd 未运行".into(),
                "智慧卡服務 pcscd 未執行".into(),
                "the smart-card service pcscd is not running".into(),
            ),
            needed.then(|| {
                t(
                    "请启动 pcscd：sudo systemctl enable --now pcscd.socket".into(),
                    "請啟動 pcscd：sudo systemctl enable --now pcscd.socket".into(),
                    "start pcscd: sudo systemctl enable --now pcscd.socket".into(),
                )
            }),
        ),
        Fact::PcscLibraryMissing { needed } => (
            t(
                "未安装智能卡库 libpcsclite".into(),
                "未安裝智慧卡函式庫 libpcsclite".into(),
                "the smart-card library libpcsclite is not installed".into(),
            ),
            needed.then(|| {
                t(
                    "请安装智能卡服务：sudo apt install pcscd".into(),
                    "請安裝智慧卡服務：sudo apt install pcscd".into(),
                    "install the smart-card service: sudo apt install pcscd".into(),
                )
            }),
        ),
        Fact::PcscNoReaders { needed } => (
            t(
                "智能卡服务未列出读卡器（使用自带驱动的 USB Key 不经过它，这不代表没有 USB Key）"
                    .into(),
                "智慧卡服務未列出讀卡機（使用自帶驅動的 USB Key 不經過它，這不代表沒有 USB Key）"
                    .into(),
                "the smart-card service lists no reader (a USB Key with its own driver never \
                 shows there, so this does not mean no key)"
                    .into(),
            ),
            needed.then(|| {
                t(
                    "请安装 CCID 驱动（sudo apt install libccid），然后重新插入 USB Key".into(),
                    "請安裝 CCID 驅動（sudo apt install libccid），然後重新插入 USB Key".into(),
                    "install the CCID driver (sudo apt install libccid), then plug the key in again"
                        .into(),
                )
            }),
        ),
        Fact::PcscReader { name, atr, in_use } => {
            let busy_cn = if *in_use { "，正被其他程序使用" } else { "" };
            let busy_tw = if *in_use { "，正被其他程式使用" } else { "" };
            let busy_en = if *in_use { ", in use by another program" } else { "" };
            (
                match atr {
                    Some(atr) => t(
                        format!("读卡器 {name}：有卡，ATR {atr}{busy_cn}"),
                        format!("讀卡機 {name}：有卡，ATR {atr}{busy_tw}"),
                        format!("reader {name}: a card is in, ATR {atr}{busy_en}"),
                    ),
                    None => t(
                        format!("读卡器 {name}：无卡"),
                        format!("讀卡機 {name}：無卡"),
                        format!("reader {name}: no card"),
                    ),
                },
                None,
            )
        }
        Fact::PcscdRunning => (
            t(
                "智能卡服务 pcscd 正在运行".into(),
                "智慧卡服務 pcscd 正在執行".into(),
                "the smart-card service pcscd is running".into(),
            ),
            None,
        ),
        Fact::UdevRuleMissing {
            vendor,
            model,
            usb,
            file,
            rule,
        } => (
            t(
                format!("{vendor} {model}（{usb}）需要的 udev 规则未安装"),
                format!("{vendor} {model}（{usb}）需要的 udev 規則未安裝"),
                format!("the udev rule {vendor} {model} ({usb}) needs is not installed"),
            ),
            Some(t(
                format!("请以管理员身份把此行写入 /etc/udev/rules.d/{file}，再重新插入：{rule}"),
                format!("請以管理員身分把此行寫入 /etc/udev/rules.d/{file}，再重新插入：{rule}"),
                format!(
                    "as an administrator, write this line to /etc/udev/rules.d/{file}, then plug the key in again: {rule}"
                ),
            )),
        ),
        Fact::DeviceNoAccess {
            vendor,
            model,
            node,
        } => (
            t(
                format!("当前用户无权访问 {vendor} {model}（{node}）"),
                format!("目前使用者無權存取 {vendor} {model}（{node}）"),
                format!("this user may not open {vendor} {model} ({node})"),
            ),
            Some(t(
                "请安装该 USB Key 的 udev 规则后重新插入".into(),
                "請安裝該 USB Key 的 udev 規則後重新插入".into(),
                "install the key's udev rule and plug it in again".into(),
            )),
        ),
        Fact::ModuleOk {
            path,
            manufacturer,
            keys,
        } => (
            t(
                format!("驱动 {path}（{manufacturer}）加载正常，读到 {keys} 把 USB Key"),
                format!("驅動 {path}（{manufacturer}）載入正常，讀到 {keys} 把 USB Key"),
                format!("the driver {path} ({manufacturer}) loads and sees {keys} key(s)"),
            ),
            None,
        ),
        Fact::ModuleHangs { path, seconds } => (
            t(
                format!("驱动 {path} 在 {seconds} 秒内没有响应（初始化卡住）"),
                format!("驅動 {path} 在 {seconds} 秒內沒有回應（初始化卡住）"),
                format!("the driver {path} did not answer within {seconds} s (stuck in C_Initialize)"),
            ),
            Some(t(
                "请结束驱动厂商的后台程序或重启电脑；仍不行请重新安装驱动".into(),
                "請結束驅動廠商的背景程式或重新開機；仍不行請重新安裝驅動".into(),
                "stop the driver vendor's background helper or restart the computer; if that does not help, reinstall the driver".into(),
            )),
        ),
        Fact::ModuleLoadFailed { path, reason, .. } => (
            t(
                format!("驱动 {path} 无法加载：{reason}"),
                format!("驅動 {path} 無法載入：{reason}"),
                format!("the driver {path} does not load: {reason}"),
            ),
            Some(t(
                "请重新安装该驱动".into(),
                "請重新安裝該驅動".into(),
                "reinstall this driver".into(),
            )),
        ),
        Fact::P11KitDisabled { config, why } => (
            t(
                format!("p11-kit 配置 {config} 停用了其模块（{why}）"),
                format!("p11-kit 設定 {config} 停用了其模組（{why}）"),
                format!("the p11-kit configuration {config} disables its module ({why})"),
            ),
            None,
        ),
        Fact::NoKey => (
            t(
                "未检测到 USB Key".into(),
                "未偵測到 USB Key".into(),
                "no USB key was found".into(),
            ),
            Some(t(
                "请插入 USB Key；已插入的请换一个 USB 接口".into(),
                "請插入 USB Key；已插入的請換一個 USB 連接埠".into(),
                "plug in your USB key; if it is plugged in, try another USB port".into(),
            )),
        ),
        Fact::KeysFound { count } => (
            t(
                format!("读到 {count} 个 USB Key"),
                format!("讀到 {count} 個 USB Key"),
                format!("{count} USB key(s) found"),
            ),
            None,
        ),
        Fact::CaOk { url } => (
            t(
                format!("证书服务 {url} 连接正常"),
                format!("憑證服務 {url} 連線正常"),
                format!("the CA service {url} answers"),
            ),
            None,
        ),
        Fact::CaUnreachable { url, reason } => (
            t(
                format!("无法连接证书服务 {url}：{reason}"),
                format!("無法連線憑證服務 {url}：{reason}"),
                format!("the CA service {url} cannot be reached: {reason}"),
            ),
            Some(t(
                "请检查网络连接和证书服务地址".into(),
                "請檢查網路連線和憑證服務位址".into(),
                "check the network connection and the CA address".into(),
            )),
        ),
        Fact::CaRootInvalid { reason } => (
            t(
                format!("证书服务的根证书无效：{reason}"),
                format!("憑證服務的根憑證無效：{reason}"),
                format!("the CA's root certificate is not valid: {reason}"),
            ),
            Some(t(
                "请从证书服务机构重新获取根证书".into(),
                "請向憑證服務機構重新取得根憑證".into(),
                "get the root certificate from your CA again".into(),
            )),
        ),
        Fact::ClockSkew { seconds } => (
            t(
                format!("本机时间与证书服务相差 {seconds} 秒"),
                format!("本機時間與憑證服務相差 {seconds} 秒"),
                format!("this computer's clock is {seconds} s off the CA's"),
            ),
            Some(t(
                "请校准系统时间（开启自动对时）".into(),
                "請校正系統時間（開啟自動校時）".into(),
                "set the system clock right (turn on automatic time)".into(),
            )),
        ),
    }
}

/// A problem and its fix as one sentence.
pub(super) fn join(lang: Lang, message: &str, fix: &str) -> String {
    match lang {
        Lang::ZhCn | Lang::ZhTw => format!("{message}。{fix}。"),
        Lang::En => {
            let mut m = message.to_owned();
            if let Some(first) = m.get(..1) {
                let up = first.to_uppercase();
                m.replace_range(..1, &up);
            }
            format!("{m}: {fix}.")
        }
    }
}

/// The verdict when nothing is wrong.
pub(super) fn all_well(lang: Lang, keys: usize) -> String {
    match lang {
        Lang::ZhCn => format!("环境检测通过：读到 {keys} 个 USB Key，驱动正常。"),
        Lang::ZhTw => format!("環境檢測通過：讀到 {keys} 個 USB Key，驅動正常。"),
        Lang::En => format!("All is well: {keys} USB key(s) found, drivers working."),
    }
}

/// One of every finding, for the language test.
#[cfg(test)]
pub(super) fn samples() -> Vec<Fact> {
    let s = |x: &str| x.to_owned();
    vec![
        Fact::DriverMissing {
            vendor: s("龙脉"),
            model: s("mToken GM3000"),
            usb: s("055c:e618"),
            module: Some(s("libgm3000_pkcs11.so")),
        },
        Fact::DriverWrongArch {
            path: s("/x.so"),
            module_arch: s("aarch64"),
            host_arch: s("x86_64"),
        },
        Fact::KeyReady {
            vendor: s("v"),
            model: s("m"),
            usb: s("u"),
        },
        Fact::KeyNotSeen {
            vendor: s("v"),
            model: s("m"),
            usb: s("u"),
        },
        Fact::UnknownCcid {
            usb: s("u"),
            product: s("p"),
        },
        Fact::PcscdMissing { needed: true },
        Fact::PcscdRunning,
        Fact::PcscLibraryMissing { needed: true },
        Fact::PcscNoReaders { needed: true },
        Fact::PcscReader {
            name: "Virtual PCD 00 00".into(),
            atr: Some("3B00".into()),
            in_use: true,
        },
        Fact::PcscReader {
            name: "Virtual PCD 00 01".into(),
            atr: None,
            in_use: false,
        },
        Fact::UdevRuleMissing {
            vendor: s("v"),
            model: s("m"),
            usb: s("u"),
            file: s("f"),
            rule: s("r"),
        },
        Fact::DeviceNoAccess {
            vendor: s("v"),
            model: s("m"),
            node: s("n"),
        },
        Fact::ModuleOk {
            path: s("p"),
            manufacturer: s("m"),
            keys: 1,
        },
        Fact::ModuleHangs {
            path: s("p"),
            seconds: 5.0,
        },
        Fact::ModuleLoadFailed {
            path: s("p"),
            reason: s("r"),
            serious: true,
        },
        Fact::P11KitDisabled {
            config: s("c"),
            why: s("w"),
        },
        Fact::NoKey,
        Fact::KeysFound { count: 1 },
        Fact::CaOk { url: s("u") },
        Fact::CaUnreachable {
            url: s("u"),
            reason: s("r"),
        },
        Fact::CaRootInvalid { reason: s("r") },
        Fact::ClockSkew { seconds: 600 },
    ]
}
