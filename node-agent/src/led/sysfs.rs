//! The sysfs LED class (`/sys/class/leds/NAME`), e.g. the Pi's green `ACT`
//! LED. Its trigger is set to `none` first so the kernel stops blinking it
//! for disk activity.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use embedded_hal::digital::{ErrorKind, ErrorType, OutputPin};

#[derive(Debug)]
pub struct SysfsLed {
    brightness: PathBuf,
    /// Written for "on": the LED's `max_brightness`.
    max: String,
}

#[derive(Debug, thiserror::Error)]
#[error("LED {path}: {source}")]
pub struct SysfsLedError {
    path: String,
    source: io::Error,
}

impl embedded_hal::digital::Error for SysfsLedError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

impl SysfsLed {
    /// Take over LED `name` below `root` (`/` on a board).
    pub fn open(root: &Path, name: &str) -> Result<Self, SysfsLedError> {
        let dir = root.join("sys/class/leds").join(name);
        let err = |path: &Path| {
            let path = path.display().to_string();
            move |source| SysfsLedError { path, source }
        };
        let trigger = dir.join("trigger");
        fs::write(&trigger, "none").map_err(err(&trigger))?;
        let max_path = dir.join("max_brightness");
        let max = fs::read_to_string(&max_path).map(|s| s.trim().to_string()).unwrap_or_default();
        let max = if max.is_empty() || max == "0" { "1".to_string() } else { max };
        Ok(SysfsLed { brightness: dir.join("brightness"), max })
    }

    fn write(&self, value: &str) -> Result<(), SysfsLedError> {
        fs::write(&self.brightness, value)
            .map_err(|source| SysfsLedError { path: self.brightness.display().to_string(), source })
    }
}

impl ErrorType for SysfsLed {
    type Error = SysfsLedError;
}

impl OutputPin for SysfsLed {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.write("0")
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.write(&self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drives_brightness_after_taking_the_trigger() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let dir = root.join("sys/class/leds/ACT");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("trigger"), "[mmc0] none heartbeat").unwrap();
        fs::write(dir.join("max_brightness"), "255\n").unwrap();
        let mut led = SysfsLed::open(&root, "ACT").unwrap();
        assert_eq!(fs::read_to_string(dir.join("trigger")).unwrap(), "none");
        led.set_high().unwrap();
        assert_eq!(fs::read_to_string(dir.join("brightness")).unwrap(), "255");
        led.set_low().unwrap();
        assert_eq!(fs::read_to_string(dir.join("brightness")).unwrap(), "0");
        let missing = SysfsLed::open(&root, "PWR").unwrap_err();
        assert!(missing.to_string().contains("leds/PWR/trigger"), "{missing}");
    }
}
