//! MemReader's desktop app: a window over the `memreader` library. Every command here only
//! translates between the UI and the library (see `commands`); long work runs on background
//! threads that report through events (see `jobs`).

// No console window next to the app on Windows in release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod jobs;
mod reading;
mod settings;
mod state;

use tauri::Manager;

fn main() -> tauri::Result<()> {
    memmamba::alloc::single_malloc_arena();
    // PDFs are extracted by this same executable started again as a worker process.
    if let Some(code) = memreader::library::pdf_worker_from_args() {
        std::process::exit(code);
    }
    tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .setup(|app| {
            let settings_file = app.path().app_config_dir()?.join("settings.json");
            app.manage(state::AppState::new(settings_file));
            Ok(())
        })
        // Files dropped on the window are ingested from here: no command takes a path.
        .on_window_event(commands::on_window_event)
        .invoke_handler(tauri::generate_handler![
            commands::app_info,
            commands::documents,
            commands::document_text,
            commands::search,
            commands::remove_document,
            commands::pick_and_ingest,
            commands::cancel_job,
            commands::running_job,
            commands::settings,
            commands::set_device,
            commands::choose_library,
            reading::model_info,
            reading::memories,
            reading::read_documents,
            reading::ask,
            reading::history,
            reading::notes,
            reading::export_snapshot,
            reading::import_snapshot,
        ])
        .run(tauri::generate_context!())
}
