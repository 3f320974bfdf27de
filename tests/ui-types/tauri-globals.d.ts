// What ui/main.js uses of Tauri's global API (`app.withGlobalTauri`), narrowed to the window's
// commands: `request`, whose `Command` type is written from the Rust enum (protocol.d.ts), and the
// getters, listed here by hand as `generate_handler!` in src-tauri/src/window_app.rs lists them
// (keep the two in step). A command name not listed, or a `Command` that does not match the
// enum, fails the check.
interface TauriEvent {
  payload: any;
}

interface Window {
  __TAURI__: {
    core: {
      invoke(cmd: "request", args: { command: Command }): Promise<void>;
      invoke(cmd: "get_settings"): Promise<AppSettings>;
      invoke(cmd: "get_personal"): Promise<PersonalView>;
      invoke(cmd: "get_onboarding"): Promise<OnboardingView | null>;
      invoke(cmd: "get_extras"): Promise<Extras>;
      invoke(cmd: "get_status"): Promise<StatusSnapshot>;
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
