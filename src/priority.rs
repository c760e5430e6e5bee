//! The one priority type of the whole pipeline: rules declare it, alerts carry it, every output
//! filters on it, the heartbeat counts by it. Falco's eight levels, named as Falco names them in
//! alerts (`Informational`), parsed as rule files and settings spell them (`INFO`, `warning`).

use std::fmt;
use std::str::FromStr;

/// A rule's priority, from most to least severe. `Ord` follows severity: a more severe
/// priority is greater (`Emergency > Debug`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Priority {
    /// Emergency.
    Emergency,
    /// Alert.
    Alert,
    /// Critical.
    Critical,
    /// Error.
    Error,
    /// Warning.
    Warning,
    /// Notice.
    Notice,
    /// Informational (`info`).
    Informational,
    /// Debug.
    Debug,
}

impl Priority {
    /// Falco's numeric value (0 = most severe).
    pub(crate) fn level(self) -> u8 {
        self as u8
    }

    /// The capitalised long name (`Informational`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Priority::Emergency => "Emergency",
            Priority::Alert => "Alert",
            Priority::Critical => "Critical",
            Priority::Error => "Error",
            Priority::Warning => "Warning",
            Priority::Notice => "Notice",
            Priority::Informational => "Informational",
            Priority::Debug => "Debug",
        }
    }
}

impl PartialOrd for Priority {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Priority {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.level().cmp(&self.level())
    }
}

/// An unknown priority name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid priority '{0}'")]
pub struct PriorityError(pub String);

impl FromStr for Priority {
    type Err = PriorityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "emergency" => Priority::Emergency,
            "alert" => Priority::Alert,
            "critical" => Priority::Critical,
            "error" => Priority::Error,
            "warning" => Priority::Warning,
            "notice" => Priority::Notice,
            "informational" | "info" => Priority::Informational,
            "debug" => Priority::Debug,
            _ => return Err(PriorityError(s.to_string())),
        })
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Priority {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Priority {
    /// Every priority, most severe first (index = [`Priority::level`]).
    pub const ALL: [Priority; 8] = [
        Priority::Emergency,
        Priority::Alert,
        Priority::Critical,
        Priority::Error,
        Priority::Warning,
        Priority::Notice,
        Priority::Informational,
        Priority::Debug,
    ];

    /// The priority of a Falco numeric level (0 = Emergency … 7 = Debug).
    pub fn from_level(level: u8) -> Option<Priority> {
        Priority::ALL.get(usize::from(level)).copied()
    }

    /// The heartbeat's per-priority alert metric (`AlertsEmergency` … `AlertsDebug`).
    pub(crate) fn metric_name(self) -> &'static str {
        match self {
            Priority::Emergency => "AlertsEmergency",
            Priority::Alert => "AlertsAlert",
            Priority::Critical => "AlertsCritical",
            Priority::Error => "AlertsError",
            Priority::Warning => "AlertsWarning",
            Priority::Notice => "AlertsNotice",
            Priority::Informational => "AlertsInformational",
            Priority::Debug => "AlertsDebug",
        }
    }
}

impl<'de> serde::Deserialize<'de> for Priority {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_names_and_order_agree() {
        for (level, p) in Priority::ALL.iter().enumerate() {
            assert_eq!(usize::from(p.level()), level);
            assert_eq!(Priority::from_level(p.level()), Some(*p));
            assert_eq!(p.as_str().parse::<Priority>(), Ok(*p));
            assert_eq!(p.as_str().to_uppercase().parse::<Priority>(), Ok(*p));
            assert_eq!(p.metric_name(), format!("Alerts{}", p.as_str()));
        }
        assert_eq!("info".parse::<Priority>(), Ok(Priority::Informational));
        assert!(" Warning ".parse::<Priority>().is_ok());
        assert!("loud".parse::<Priority>().is_err());
        assert_eq!(Priority::from_level(8), None);
        // Names to Falco's numbers, as the CloudWatch sink's table had them.
        let level = |name: &str| name.parse::<Priority>().ok().map(Priority::level);
        assert_eq!(level("Emergency"), Some(0));
        assert_eq!(level("critical"), Some(2));
        assert_eq!(level("info"), Some(6));
        assert_eq!(level("DEBUG"), Some(7));
        assert_eq!(level("loud"), None);
        assert!(Priority::Emergency > Priority::Debug);
        let json = serde_json::to_string(&Priority::Warning).unwrap_or_default();
        assert_eq!(json, "\"Warning\"");
        let back: Result<Priority, _> = serde_json::from_str("\"info\"");
        assert_eq!(back.ok(), Some(Priority::Informational));
    }
}
