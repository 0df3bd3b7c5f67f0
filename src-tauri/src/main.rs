//! The Keyward desktop app.

// No console window behind the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // Started again as a driver's test load (环境检测): load it, answer, exit.
    keyward_flows::doctor::serve_probe_if_asked();
    keyward_desktop::draw_without_compositing_from_the_start();
    keyward_desktop::run();
}
