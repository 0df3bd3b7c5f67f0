//! Tauri's build step: reads tauri.conf.json and embeds `dist/`.

fn main() {
    tauri_build::build();
}
