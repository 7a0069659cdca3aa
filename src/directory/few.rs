//! A list that usually holds one value, for the directory's indexes: the object names of one SCIM
//! id (two only while a rename moves the user), the users of one email or externalId. One value
//! is held inline, where a `Vec` would allocate room for four of them per key; changes to the rare
//! longer lists rebuild them, which costs nothing that matters at their length.

use std::ops::Deref;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Few<T> {
    One(T),
    Many(Box<[T]>),
}

impl<T> Default for Few<T> {
    fn default() -> Self {
        Few::Many(Box::default())
    }
}

impl<T> Deref for Few<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Few::One(t) => std::slice::from_ref(t),
            Few::Many(ts) => ts,
        }
    }
}

impl<T: Clone> Few<T> {
    fn set(&mut self, mut ts: Vec<T>) {
        *self = match ts.len() {
            1 => Few::One(ts.pop().expect("one value")),
            _ => Few::Many(ts.into_boxed_slice()),
        };
    }

    /// Appends `t`.
    pub fn push(&mut self, t: T) {
        let mut ts = self.to_vec();
        ts.push(t);
        self.set(ts);
    }

    /// Keeps the values `keep` accepts, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        if !self.iter().all(&mut keep) {
            let ts = self.iter().filter(|t| keep(t)).cloned().collect();
            self.set(ts);
        }
    }

    /// Inserts `t` where it sorts, unless it is already there (the list is kept sorted).
    pub fn insert_sorted(&mut self, t: T)
    where
        T: Ord,
    {
        if let Err(at) = self.binary_search(&t) {
            let mut ts = self.to_vec();
            ts.insert(at, t);
            self.set(ts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_one_value_inline_and_more_in_order() {
        let mut f = Few::default();
        assert!(f.is_empty());
        f.insert_sorted("b");
        assert_eq!(f, Few::One("b"));
        f.insert_sorted("a");
        f.insert_sorted("b");
        f.insert_sorted("c");
        assert_eq!(&*f, &["a", "b", "c"]);
        f.retain(|t| *t != "b" && *t != "c");
        assert_eq!(f, Few::One("a"));
        f.push("z");
        f.push("y");
        assert_eq!(&*f, &["a", "z", "y"], "push appends");
        f.retain(|_| false);
        assert!(f.is_empty());
    }
}
