// What ui/main.js uses of Tauri's global API (`app.withGlobalTauri`), narrowed to the window's
// commands (src-tauri/src/window_app.rs): a command the window process does not register, or a
// `request` whose `Command` does not match the Rust enum, fails the check.
interface TauriEvent {
  payload: any;
}

interface Window {
  __TAURI__: {
    core: {
      invoke(cmd: "request", args: { command: Command }): Promise<void>;
      invoke(cmd: "get_settings"): Promise<AppSettings>;
      invoke(cmd: "get_status" | "get_personal" | "get_onboarding" | "get_extras"): Promise<any>;
    };
    event: {
      listen(event: string, handler: (event: TauriEvent) => void): Promise<() => void>;
    };
    window: {
      getCurrentWindow(): { close(): Promise<void> };
    };
    webview: {
      getCurrentWebview(): { onDragDropEvent(handler: (event: { payload: { type: string; paths?: string[] } }) => void): Promise<() => void> };
    };
  };
}
