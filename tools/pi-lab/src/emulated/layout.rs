//! Where one lab's emulated boards keep their cards, consoles and logs.

use super::*;

/// `sun_path` of a Unix socket address holds 108 bytes with its NUL.
pub(super) const SOCKET_PATH_MAX: usize = 107;

/// The folder of a lab's emulated boards, beside its journal.
const BOARDS_DIR: &str = "boards";

/// Where one lab's boards live: `STATE/LAB/fleet/boards/`.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(fleet_dir: &Path) -> Layout {
        Layout { dir: fleet_dir.join(BOARDS_DIR) }
    }

    pub fn boot(&self) -> PathBuf {
        self.dir.join("boot")
    }

    pub fn node(&self, node: &str) -> PathBuf {
        self.dir.join(node)
    }

    pub fn card(&self, node: &str) -> PathBuf {
        self.node(node).join("card.img")
    }

    pub fn console_log(&self, node: &str) -> PathBuf {
        self.node(node).join("console.log")
    }

    /// The console's socket: beside its log, unless that path is too long
    /// for a Unix socket (108 bytes); then in [`Layout::socket_dir`].
    pub fn console_socket(&self, node: &str) -> PathBuf {
        let near = self.node(node).join("console.sock");
        if near.as_os_str().len() < SOCKET_PATH_MAX {
            return near;
        }
        self.socket_dir().join(format!("{node}.sock"))
    }

    /// A short folder for console sockets, named after this lab's folder.
    pub fn socket_dir(&self) -> PathBuf {
        let key = lab_spec::alloc::fnv1a(&self.dir.to_string_lossy());
        PathBuf::from("/run/pi-lab").join(format!("consoles-{:08x}", key as u32))
    }

    pub fn qemu_log(&self, node: &str) -> PathBuf {
        self.node(node).join("qemu.log")
    }
}

/// Name of board `index`'s tap on the switch.
pub fn tap(lab: &str, index: usize) -> String {
    format!("{}-t{index}", names::tag(lab))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_sockets_fit_a_unix_socket_address() {
        let short = Layout::new(Path::new("/s/lab/fleet"));
        assert_eq!(short.console_socket("r1"), Path::new("/s/lab/fleet/boards/r1/console.sock"));
        let long = Layout::new(&Path::new("/").join("x".repeat(120)));
        let socket = long.console_socket("r1");
        assert!(socket.as_os_str().len() < 108 && socket.starts_with("/run/pi-lab/"), "{socket:?}");
        assert_ne!(long.socket_dir(), short.socket_dir());
    }
}
