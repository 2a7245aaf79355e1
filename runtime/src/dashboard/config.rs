//! The dashboard's settings: what `dashboard!` generates a struct for, what a
//! settings file may override, and the checks both go through.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::TrackingConfig;

// The value rules the macro checks too, from the crate both share.
pub use tasktrail_rules::{check_colour, check_prefix, check_time_zone};

/// How the runs list is sorted by default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortOrder {
    /// The model field to sort by.
    pub field: String,
    /// Newest / largest first.
    pub descending: bool,
}

/// Which actions the dashboard offers on runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actions {
    /// Cancel a run that has not ended.
    pub cancel: bool,
    /// Run an ended run again (needs a registered task kind).
    pub retry: bool,
    /// Delete a run's row.
    pub delete: bool,
}

/// Every dashboard setting, as plain data. A `dashboard!` struct converts to
/// and from it; a settings file overrides it with a [`SettingsPatch`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DashboardSettings {
    /// The page title (the browser tab).
    pub title: String,
    /// The title in the page header.
    pub header_title: String,
    /// A line under the header.
    pub description: String,
    /// Where the dashboard is mounted: `/` or a path such as `/ops/tasks`
    /// (no trailing slash).
    pub url_prefix: String,
    /// The accent colour, `#rgb` or `#rrggbb`.
    pub accent_colour: String,
    /// Runs per page of the list (1–1,000).
    pub page_size: u32,
    /// How often pages poll when live updates are unavailable.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// The model fields shown as the list's columns, in order.
    pub columns: Vec<String>,
    /// The model fields the list can be filtered by.
    pub filters: Vec<String>,
    /// The model fields free-text search looks in.
    pub search: Vec<String>,
    /// The list's default order.
    pub sort: SortOrder,
    /// The actions offered.
    pub actions: Actions,
    /// Ended runs (success, failed, cancelled, interrupted) whose last write
    /// is older than this many days are deleted by the dashboard's
    /// background task, through the tracker's [`Retention`]; none keeps
    /// them for ever. At least 1.
    ///
    /// [`Retention`]: crate::Retention
    pub retention_days: Option<u32>,
    /// `UTC`, `local`, or a fixed offset such as `+02:00`, for shown times.
    pub time_zone: String,
    /// No actions at all, whatever `actions` says.
    pub read_only: bool,
    /// When a run in progress counts as stuck: no write for this long, or
    /// running longer than three times its kind's p95 duration and at
    /// least this long. Stuck runs are flagged on the overview, the list
    /// and the run's page. Zero flags none. 30 minutes by default.
    #[serde(with = "humantime_serde", default = "default_stuck_after")]
    pub stuck_after: Duration,
}

/// [`DashboardSettings::stuck_after`]'s default: 30 minutes.
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(30 * 60);

fn default_stuck_after() -> Duration {
    DEFAULT_STUCK_AFTER
}

/// A partial [`DashboardSettings`]: what a settings file sets. Absent keys
/// keep the `dashboard!` values; unknown keys are an error.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct SettingsPatch {
    pub title: Option<String>,
    pub header_title: Option<String>,
    pub description: Option<String>,
    pub url_prefix: Option<String>,
    pub accent_colour: Option<String>,
    pub page_size: Option<u32>,
    #[serde(default, with = "humantime_serde::option")]
    pub poll_interval: Option<Duration>,
    pub columns: Option<Vec<String>>,
    pub filters: Option<Vec<String>>,
    pub search: Option<Vec<String>>,
    pub sort: Option<SortOrder>,
    pub actions: Option<Actions>,
    pub retention_days: Option<Option<u32>>,
    pub time_zone: Option<String>,
    pub read_only: Option<bool>,
    #[serde(default, with = "humantime_serde::option")]
    pub stuck_after: Option<Duration>,
}

impl SettingsPatch {
    /// Writes the keys the patch sets onto `settings`.
    pub fn apply(self, settings: &mut DashboardSettings) {
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(value) = self.$field {
                    settings.$field = value;
                }
            )*};
        }
        set!(
            title,
            header_title,
            description,
            url_prefix,
            accent_colour,
            page_size,
            poll_interval,
            columns,
            filters,
            search,
            sort,
            actions,
            retention_days,
            time_zone,
            read_only,
            stuck_after
        );
    }
}

/// A setting that is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("dashboard setting `{key}`: {message}")]
pub struct SettingsError {
    /// The setting.
    pub key: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl DashboardSettings {
    /// Checks every setting against the tracked model `M`; returns every
    /// problem found.
    pub fn validate<M: TrackingConfig>(&self) -> Result<(), Vec<SettingsError>> {
        let mut errors = Vec::new();
        let mut bad = |key: &'static str, message: String| {
            errors.push(SettingsError { key, message });
        };
        if let Err(message) = check_prefix(&self.url_prefix) {
            bad("url_prefix", message);
        }
        if let Err(message) = check_colour(&self.accent_colour) {
            bad("accent_colour", message);
        }
        if !(1..=1000).contains(&self.page_size) {
            bad(
                "page_size",
                format!("{} is not between 1 and 1000", self.page_size),
            );
        }
        if self.poll_interval < Duration::from_millis(100) {
            bad(
                "poll_interval",
                format!("{:?} is shorter than 100ms", self.poll_interval),
            );
        }
        if let Err(message) = check_time_zone(&self.time_zone) {
            bad("time_zone", message);
        }
        if self.retention_days == Some(0) {
            bad(
                "retention_days",
                "0 would delete every ended run; it must be at least 1 (leave it out to keep runs for ever)"
                    .to_owned(),
            );
        }
        let names: Vec<&str> = M::FIELDS.iter().map(|f| f.field).collect();
        let mut unknown = |key: &'static str, field: &str| {
            if !names.contains(&field) {
                bad(
                    key,
                    format!(
                        "`{field}` is not a field of the tracked model (its fields: {})",
                        names.join(", ")
                    ),
                );
            }
        };
        for (key, list) in [
            ("columns", &self.columns),
            ("filters", &self.filters),
            ("search", &self.search),
        ] {
            for field in list {
                unknown(key, field);
            }
        }
        if !self.sort.field.is_empty() {
            unknown("sort", &self.sort.field);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// A field free-text search can look in: text.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be searched as text",
    label = "`search` fields must be `String` or `Option<String>`"
)]
pub trait SearchableField {}

impl SearchableField for String {}
impl SearchableField for Option<String> {}

/// A dashboard configuration: what `dashboard!` implements for the struct it
/// generates. Ties the settings to the tracked model.
pub trait DashboardConfig: Clone + Default + Send + Sync + 'static {
    /// The tracked model whose runs the dashboard shows.
    type Model: TrackingConfig;

    /// The settings, as plain data.
    fn settings(&self) -> DashboardSettings;

    /// The configuration holding `settings`.
    fn from_settings(settings: DashboardSettings) -> Self;
}

/// `Serialize` for a `dashboard!` struct: as its [`DashboardSettings`].
pub fn serialize_config<C: DashboardConfig, S: serde::Serializer>(
    config: &C,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    config.settings().serialize(serializer)
}

/// `Deserialize` for a `dashboard!` struct: a [`SettingsPatch`] over the
/// struct's defaults, validated against the model.
pub fn deserialize_config<'de, C: DashboardConfig, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<C, D::Error> {
    let patch = SettingsPatch::deserialize(deserializer)?;
    let mut settings = C::default().settings();
    patch.apply(&mut settings);
    settings.validate::<C::Model>().map_err(|errors| {
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        serde::de::Error::custom(text.join("; "))
    })?;
    Ok(C::from_settings(settings))
}
