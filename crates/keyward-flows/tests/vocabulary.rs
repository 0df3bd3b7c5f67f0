//! The operator's vocabulary over the Chinese text this crate writes (`messages` and the
//! environment check's findings), the same rules the window's locale files are held to
//! (`ui/tests/vocabulary.test.ts`): the key is "USB Key", the PIN is 证书密码 (no bare PIN,
//! no 口令, no PKCS#11 words), Chinese text takes full-width punctuation, and none of the
//! replaced phrases is left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

const CJK: fn(char) -> bool = |c| {
    ('\u{3000}'..='\u{303f}').contains(&c)
        || ('\u{3400}'..='\u{9fff}').contains(&c)
        || ('\u{ff00}'..='\u{ffef}').contains(&c)
};

const OLD_PHRASES: &[&str] = &[
    "需重新申请新证书",
    "需重新申請新憑證",
    "已输错过密码",
    "已輸錯過密碼",
    "天后开放",
    "天後開放",
    "经办人本人自动审核",
    "經辦人本人自動審核",
    "已绑定本证书",
    "已綁定本憑證",
    "CA 记录激活时间",
    "SO PIN",
];

const KEY_NAMES: &[&str] = &[
    "介质", "介質", "UKey", "U盾", "Key 盘", "Key盘", "USB key", "USBKey",
];
const PKCS11_WORDS: &[&str] = &["口令", "slot", "token", "C_"];

/// The string literals of a Rust source file that hold Chinese text.
fn chinese_literals(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                // A comment runs to the end of the line.
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '\'' => {
                // A char literal ('"' among them) or a lifetime: skip what could be a quote.
                if let Some('\\') = chars.next() {
                    chars.next();
                }
            }
            '"' => {
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        c => s.push(c),
                    }
                }
                if s.chars().any(CJK) {
                    out.push(s);
                }
            }
            _ => {}
        }
    }
    out
}

/// ASCII punctuation beside a Chinese character (a file extension, a decimal or a web
/// address aside).
fn half_width(s: &str) -> Vec<String> {
    let v: Vec<char> = s.chars().collect();
    let mut found = Vec::new();
    for i in 0..v.len() {
        if !",.:;!?()".contains(v[i]) {
            continue;
        }
        let before = i.checked_sub(1).map(|j| v[j]);
        let after = v.get(i + 1).copied();
        if (v[i] == '.' && after.is_some_and(|c| c.is_ascii_alphanumeric()))
            || (v[i] == ':' && after == Some('/'))
        {
            continue;
        }
        if before.is_some_and(CJK) || after.is_some_and(CJK) {
            let from = i.saturating_sub(6);
            found.push(v[from..(i + 7).min(v.len())].iter().collect());
        }
    }
    found
}

fn problems(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for p in OLD_PHRASES {
        if text.contains(p) {
            out.push(format!("replaced phrase {p:?}"));
        }
    }
    for k in KEY_NAMES {
        if text.contains(k) {
            out.push(format!("the key called {k:?}"));
        }
    }
    for w in PKCS11_WORDS {
        if text.contains(w) {
            out.push(format!("{w:?}"));
        }
    }
    let bytes: Vec<char> = text.chars().collect();
    for (i, _) in text.match_indices("PIN") {
        let at = text[..i].chars().count();
        let before = at.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(at + 3).copied();
        if !before.is_some_and(|c| c.is_ascii_alphabetic())
            && !after.is_some_and(|c| c.is_ascii_alphabetic())
        {
            out.push("a bare PIN".to_owned());
        }
    }
    for at in half_width(text) {
        out.push(format!("half-width punctuation in …{at}…"));
    }
    out
}

#[test]
fn the_operator_messages_keep_one_vocabulary() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.join("messages.rs")];
    for e in std::fs::read_dir(src.join("doctor")).unwrap() {
        files.push(e.unwrap().path());
    }
    let mut found = Vec::new();
    let mut checked = 0;
    for f in &files {
        for s in chinese_literals(&std::fs::read_to_string(f).unwrap()) {
            checked += 1;
            for p in problems(&s) {
                found.push(format!(
                    "{}: {p}: {s}",
                    f.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    assert!(checked > 100, "only {checked} Chinese strings found");
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_rules_catch_what_they_look_for() {
    assert_eq!(
        chinese_literals(r#"pick("证书", "憑證", "cert") // "注释""#),
        ["证书", "憑證"]
    );
    assert!(!problems("请插入 UKey").is_empty());
    assert!(!problems("证书密码（PIN）错误").is_empty());
    assert!(!problems("已过期,请续期").is_empty());
    assert!(!problems("已输错过密码。").is_empty());
    assert!(problems("PKCS#11 模块 libfoo.so 已加载。").is_empty());
    assert!(problems("USB Key 已插入，证书密码正确。").is_empty());
}
