//! Shared application state handed to every job: a database pool, a mailer…

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

/// A set of values, at most one per type, that job handlers reach through
/// [`JobContext::state`](crate::JobContext::state).
///
/// ```
/// use hopper::State;
/// #[derive(Debug)]
/// struct Mailer { from: String }
/// let state = State::new().with(Mailer { from: "hi@example.com".into() });
/// assert_eq!(state.get::<Mailer>().unwrap().from, "hi@example.com");
/// assert!(state.get::<String>().is_none());
/// ```
#[derive(Clone, Default)]
pub struct State {
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl State {
    /// An empty state.
    ///
    /// ```
    /// assert!(hopper::State::new().get::<u8>().is_none());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value`, replacing any earlier value of the same type.
    ///
    /// ```
    /// let state = hopper::State::new().with(42u32);
    /// assert_eq!(state.get::<u32>(), Some(&42));
    /// ```
    pub fn with<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.values.insert(TypeId::of::<T>(), Arc::new(value));
        self
    }

    /// The value of type `T`, if one was added.
    ///
    /// ```
    /// let state = hopper::State::new().with(String::from("x"));
    /// assert_eq!(state.get::<String>().map(String::as_str), Some("x"));
    /// ```
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|value| value.downcast_ref::<T>())
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("values", &self.values.len())
            .finish()
    }
}
