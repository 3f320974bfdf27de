//! Watching the directories the personal-account scan read, for changes only.
//!
//! Why not the notify crate on Linux: notify 8 puts `IN_OPEN` in its inotify mask, so every file
//! that any process opens in a watched directory (the home directory is one, for
//! `~/.claude.json`) wakes the watcher's thread, even though the event is then dropped: 17 to 443
//! wake-ups a minute on an idle desktop (docs/tray.md). Here the mask names changes only
//! (created, deleted, moved, written, attributes), and the inotify descriptor is read on the
//! app's tokio runtime (epoll, the inotify crate's event stream): no thread of ours waits for it.
//! macOS and Windows keep notify (FSEvents and ReadDirectoryChangesW report changes only).

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

/// Called with each changed path, or `None` when events were lost (rescan everything).
pub type OnChange = Box<dyn Fn(Option<&Path>) + Send + Sync + 'static>;

#[cfg(target_os = "linux")]
pub use linux::DirWatcher;
#[cfg(not(target_os = "linux"))]
pub use portable::DirWatcher;

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, PoisonError};

    use inotify::{EventMask, Inotify, StreamExt, WatchDescriptor, WatchMask, Watches};

    use super::*;

    /// inotify(7) events that mean a change; `IN_OPEN`, `IN_ACCESS` and `IN_CLOSE_NOWRITE` are
    /// left out on purpose.
    fn changes() -> WatchMask {
        WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MODIFY
            | WatchMask::CLOSE_WRITE
            | WatchMask::MOVED_FROM
            | WatchMask::MOVED_TO
            | WatchMask::ATTRIB
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF
            | WatchMask::ONLYDIR
    }

    /// Watches directories (not recursively) until dropped.
    pub struct DirWatcher {
        watches: Watches,
        dirs: Arc<Mutex<HashMap<WatchDescriptor, PathBuf>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl DirWatcher {
        /// Starts reading events on the current tokio runtime.
        pub fn start(on_change: OnChange) -> io::Result<Self> {
            let inotify = Inotify::init()?;
            let watches = inotify.watches();
            let mut events = inotify.into_event_stream(vec![0u8; 16 * 1024])?;
            let dirs: Arc<Mutex<HashMap<WatchDescriptor, PathBuf>>> = Arc::default();
            let known = dirs.clone();
            let task = tokio::spawn(async move {
                while let Some(event) = events.next().await {
                    let event = match event {
                        Ok(event) => event,
                        Err(err) => {
                            // The scan still runs at start and on "Refresh now"; only live rescans stop.
                            tracing::warn!("the personal-account file watcher stopped: {err}");
                            break;
                        }
                    };
                    if event.mask.contains(EventMask::Q_OVERFLOW) {
                        on_change(None);
                        continue;
                    }
                    if event.mask.contains(EventMask::IGNORED) {
                        // The kernel dropped this watch (the directory was deleted, or its file
                        // system unmounted): forget it, so that `watched` says so and the next
                        // plan watches the directory again if it comes back.
                        let gone = known.lock().unwrap_or_else(PoisonError::into_inner).remove(&event.wd);
                        if let Some(dir) = gone {
                            on_change(Some(&dir));
                        }
                        continue;
                    }
                    let dir = known.lock().unwrap_or_else(PoisonError::into_inner).get(&event.wd).cloned();
                    if let Some(dir) = dir {
                        let path = event.name.map_or_else(|| dir.clone(), |name| dir.join(name));
                        on_change(Some(&path));
                    }
                }
            });
            Ok(DirWatcher { watches, dirs, task })
        }

        pub fn watch(&mut self, dir: &Path) -> io::Result<()> {
            let wd = self.watches.add(dir, changes())?;
            self.dirs.lock().unwrap_or_else(PoisonError::into_inner).insert(wd, dir.to_path_buf());
            Ok(())
        }

        /// The directories watched now (without those whose watch the kernel dropped).
        pub fn watched(&self) -> BTreeSet<PathBuf> {
            self.dirs.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
        }

        pub fn unwatch(&mut self, dir: &Path) {
            let mut dirs = self.dirs.lock().unwrap_or_else(PoisonError::into_inner);
            let gone: Vec<WatchDescriptor> =
                dirs.iter().filter(|(_, d)| d.as_path() == dir).map(|(w, _)| w.clone()).collect();
            for wd in gone {
                dirs.remove(&wd);
                let _ = self.watches.remove(wd);
            }
        }
    }

    impl Drop for DirWatcher {
        fn drop(&mut self) {
            self.task.abort();
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod portable {
    use notify::{RecursiveMode, Watcher};

    use super::*;

    /// Watches directories (not recursively) until dropped, through notify.
    pub struct DirWatcher {
        inner: notify::RecommendedWatcher,
        watched: BTreeSet<PathBuf>,
    }

    impl DirWatcher {
        pub fn start(on_change: OnChange) -> io::Result<Self> {
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if event.need_rescan() {
                    on_change(None);
                }
                for path in &event.paths {
                    on_change(Some(path));
                }
            })
            .map(|inner| DirWatcher { inner, watched: Default::default() })
            .map_err(io::Error::other)
        }

        pub fn watch(&mut self, dir: &Path) -> io::Result<()> {
            self.inner.watch(dir, RecursiveMode::NonRecursive).map_err(io::Error::other)?;
            self.watched.insert(dir.to_path_buf());
            Ok(())
        }

        pub fn watched(&self) -> BTreeSet<PathBuf> {
            self.watched.clone()
        }

        pub fn unwatch(&mut self, dir: &Path) {
            self.watched.remove(dir);
            let _ = self.inner.unwatch(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    /// A fresh directory, removed with the returned guard.
    fn temp_dir(tag: &str) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::Builder::new().prefix(&format!("ema-dir-watch-{tag}-")).tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        (tmp, dir)
    }

    #[tokio::test]
    async fn reading_a_file_wakes_nothing_and_writing_one_is_reported() {
        let (_tmp, dir) = temp_dir("rw");
        let file = dir.join(".claude.json");
        std::fs::write(&file, "{}").unwrap();
        let seen: Arc<Mutex<Vec<Option<PathBuf>>>> = Arc::default();
        let log = seen.clone();
        let mut watcher =
            DirWatcher::start(Box::new(move |p| log.lock().unwrap().push(p.map(Path::to_path_buf)))).unwrap();
        watcher.watch(&dir).unwrap();
        // What every program does to files in the home directory all day: open and read.
        for _ in 0..20 {
            let _ = std::fs::read(&file).unwrap();
            let _ = std::fs::read_dir(&dir).unwrap().count();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(seen.lock().unwrap().is_empty(), "reads woke the watcher: {:?}", seen.lock().unwrap());
        // A client saving its settings by rename, as Claude Code does.
        std::fs::write(dir.join(".claude.json.tmp"), "{\"mcpServers\":{}}").unwrap();
        std::fs::rename(dir.join(".claude.json.tmp"), &file).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !seen.lock().unwrap().contains(&Some(file.clone())) {
            assert!(tokio::time::Instant::now() < deadline, "the rename was not reported: {:?}", seen.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Unwatched, the directory is quiet again.
        watcher.unwatch(&dir);
        seen.lock().unwrap().clear();
        std::fs::write(&file, "{}").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(seen.lock().unwrap().iter().all(|p| p.is_none()), "{:?}", seen.lock().unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Linux only: the kernel's `IN_IGNORED` is what this checks; notify handles this elsewhere.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_deleted_directory_is_no_longer_watched_and_can_be_watched_again() {
        let (_tmp, parent) = temp_dir("gone");
        let dir = parent.join(".cursor");
        std::fs::create_dir_all(&dir).unwrap();
        let seen: Arc<Mutex<Vec<Option<PathBuf>>>> = Arc::default();
        let log = seen.clone();
        let mut watcher =
            DirWatcher::start(Box::new(move |p| log.lock().unwrap().push(p.map(Path::to_path_buf)))).unwrap();
        watcher.watch(&dir).unwrap();
        assert!(watcher.watched().contains(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while watcher.watched().contains(&dir) {
            assert!(tokio::time::Instant::now() < deadline, "the deleted directory still counts as watched");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(seen.lock().unwrap().contains(&Some(dir.clone())), "the deletion was not reported");
        // The directory comes back (a client reinstalled): watching it again reports its changes.
        std::fs::create_dir_all(&dir).unwrap();
        watcher.watch(&dir).unwrap();
        seen.lock().unwrap().clear();
        let file = dir.join("mcp.json");
        std::fs::write(&file, "{}").unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !seen.lock().unwrap().contains(&Some(file.clone())) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the recreated directory is not watched: {:?}",
                seen.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_dir_all(&parent);
    }
}
