//! Tauri's build step: reads tauri.conf.json and the capabilities, checks that the front
//! end's build (`ui/dist`) exists, and declares the app's own commands so that a capability
//! must grant each one by name.

/// Every command the UI may call; `capabilities/main-window.json` grants them to the window.
const COMMANDS: &[&str] = &[
    "token_list",
    "cert_show",
    "pin_status",
    "pin_change",
    "driver_list",
    "settings_get",
    "settings_set",
    "app_info",
    "ca_root_show",
    "ca_root_inspect",
    "activate_send_code",
    "activate",
    "unlock_apply",
    "unlock_attach",
    "unlock_submit",
    "unlock_status",
    "unlock_send_code",
    "unlock_finish",
    "renew_status",
    "renew_apply",
    "renew_pay",
    "renew_install",
    "seal_apply",
    "seal_status",
    "seal_form_download",
    "seal_install",
    "seal_show",
    "progress_list",
    "flow_pending",
    "stamp_preview",
    "stamp_file",
    "stamp_verify",
    "cert_export_path",
    "cert_export",
    "bridge_status",
    "portal_open",
    "bridge_revoke",
    "bridge_prompts",
    "bridge_answer",
    "bridge_confirm",
    "navigation_take",
    "ca_profile",
    "doctor_report",
    "support_bundle",
];

fn main() {
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(e) = tauri_build::try_build(attributes) {
        println!("cargo::error=tauri build step failed: {e:#}");
    }
}
