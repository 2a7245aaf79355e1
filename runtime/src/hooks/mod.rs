//! Formatter hooks: how users, touched objects and payloads are turned into
//! what is stored.
//!
//! `#[derive(TrackingConfig)]` implements [`FormatHooks`] with the defaults
//! below. Write `#[tracking(hooks = custom)]` to implement it yourself, or
//! override one hook with `#[tracking(format_user = path::to::fn)]`.

mod payload;

pub use payload::{REDACTED, TRUNCATED_KEY, cap_payload, redact, to_json_lenient};

use std::borrow::Cow;

/// Someone (or something) that starts a run: a user, an API client, a cron.
///
/// ```
/// struct User { id: i64, email: String }
///
/// impl tasktrail::Actor for User {
///     fn label(&self) -> String { self.email.clone() }
///     fn id(&self) -> Option<String> { Some(self.id.to_string()) }
/// }
/// ```
pub trait Actor {
    /// How the actor is shown: stored in the `user` column by default.
    fn label(&self) -> String;
    /// A stable identifier, when the actor has one.
    fn id(&self) -> Option<String> {
        None
    }
}

impl Actor for str {
    fn label(&self) -> String {
        self.to_owned()
    }
}

impl Actor for String {
    fn label(&self) -> String {
        self.clone()
    }
}

impl<T: Actor + ?Sized> Actor for &T {
    fn label(&self) -> String {
        (**self).label()
    }
    fn id(&self) -> Option<String> {
        (**self).id()
    }
}

/// Something a run touches: a book being imported, an account being billed.
///
/// `object_key` identifies it (conflict locks use it); `label` is what the
/// dashboard shows.
pub trait TrackedObject {
    /// A stable identity such as `book:42`.
    fn object_key(&self) -> String;
    /// How the object is shown; the key by default.
    fn label(&self) -> String {
        self.object_key()
    }
}

macro_rules! object_by_display {
    ($($ty:ty),*) => {$(
        impl TrackedObject for $ty {
            fn object_key(&self) -> String {
                self.to_string()
            }
        }
    )*};
}

object_by_display!(str, String, i32, i64, u32, u64, uuid::Uuid);

impl<T: TrackedObject + ?Sized> TrackedObject for &T {
    fn object_key(&self) -> String {
        (**self).object_key()
    }
    fn label(&self) -> String {
        (**self).label()
    }
}

/// An actor as an event carries it: its label and id, taken when the event
/// was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorInfo {
    /// [`Actor::label`].
    pub label: String,
    /// [`Actor::id`].
    pub id: Option<String>,
}

impl ActorInfo {
    /// Takes the label and id of `actor`.
    pub fn of(actor: &(impl Actor + ?Sized)) -> Self {
        ActorInfo {
            label: actor.label(),
            id: actor.id(),
        }
    }
}

impl Actor for ActorInfo {
    fn label(&self) -> String {
        self.label.clone()
    }
    fn id(&self) -> Option<String> {
        self.id.clone()
    }
}

/// An object as an event carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// [`TrackedObject::object_key`].
    pub key: String,
    /// [`TrackedObject::label`].
    pub label: String,
}

impl ObjectInfo {
    /// Takes the key and label of `object`.
    pub fn of(object: &(impl TrackedObject + ?Sized)) -> Self {
        ObjectInfo {
            key: object.object_key(),
            label: object.label(),
        }
    }
}

impl TrackedObject for ObjectInfo {
    fn object_key(&self) -> String {
        self.key.clone()
    }
    fn label(&self) -> String {
        self.label.clone()
    }
}

/// Which payload column a value is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    /// The run's arguments (role `args`).
    Args,
    /// The run's keyword arguments / options (role `kwargs`).
    Kwargs,
    /// The run's result (role `result`).
    Result,
}

/// The label stored for a run nobody started: `anonymous`.
pub const ANONYMOUS: &str = "anonymous";

/// How actors, objects and payloads are formatted before they are stored.
///
/// Every method has a default; implement only what you want to change. The
/// hooks run on the emitting task: a hook that panics is caught, logged,
/// counted in [`TrackerStats::hook_errors`](crate::TrackerStats) and replaced
/// by the default, so a broken hook never breaks a run. Redaction and the
/// size cap are applied *after* `format_payload`, so a hook cannot leak a
/// redacted key.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not implement `tasktrail::FormatHooks`",
    label = "`#[tracking(hooks = custom)]` asks you to write `impl tasktrail::FormatHooks for {Self}`",
    note = "every hook has a default: an empty `impl tasktrail::FormatHooks for {Self} {{}}` keeps them all"
)]
pub trait FormatHooks {
    /// The `user` column: the actor's label, or `anonymous` for none.
    fn format_user(user: Option<&dyn Actor>) -> String {
        default_format_user(user)
    }

    /// The `objects` column: the objects' labels joined with `, `.
    fn format_objects(objects: &[&dyn TrackedObject]) -> String {
        default_format_objects(objects)
    }

    /// A payload (`args`, `kwargs`, `result`) after serialisation, before
    /// redaction and the size cap. Unchanged by default.
    fn format_payload(kind: PayloadKind, value: serde_json::Value) -> serde_json::Value {
        let _ = kind;
        value
    }
}

/// The default [`FormatHooks::format_user`].
pub fn default_format_user(user: Option<&dyn Actor>) -> String {
    match user {
        Some(actor) => {
            let label = actor.label();
            if label.trim().is_empty() {
                ANONYMOUS.to_owned()
            } else {
                label
            }
        }
        None => ANONYMOUS.to_owned(),
    }
}

/// The default [`FormatHooks::format_objects`].
pub fn default_format_objects(objects: &[&dyn TrackedObject]) -> String {
    let labels: Vec<Cow<'_, str>> = objects.iter().map(|o| Cow::Owned(o.label())).collect();
    labels.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_user_label() {
        assert_eq!(default_format_user(None), "anonymous");
        assert_eq!(default_format_user(Some(&"ada")), "ada");
        assert_eq!(default_format_user(Some(&"  ")), "anonymous");
    }

    #[test]
    fn default_objects_label() {
        let a = ObjectInfo {
            key: "book:1".into(),
            label: "Dune".into(),
        };
        let objects: [&dyn TrackedObject; 3] = [&a, &"book:2", &7_i64];
        assert_eq!(default_format_objects(&objects), "Dune, book:2, 7");
        assert_eq!(default_format_objects(&[]), "");
    }
}
