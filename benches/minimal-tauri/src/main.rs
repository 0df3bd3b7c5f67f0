//! A minimal Tauri 2 app: one window, one line of Chinese text, nothing else.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    if let Err(e) = tauri::Builder::default().run(tauri::generate_context!()) {
        eprintln!("keyward-minimal-tauri: {e}");
        std::process::exit(1);
    }
}
