//! MemReader's desktop app: a window over the `memreader` library. Every command here only
//! translates between the UI and the library (see `commands`).

// No console window next to the app on Windows in release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;

fn main() -> tauri::Result<()> {
    tauri::Builder::default()
        .invoke_handler(tauri::generate_handler![
            commands::app_info,
            commands::demo_books
        ])
        .run(tauri::generate_context!())
}
