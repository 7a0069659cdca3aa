//! The server's watched caches of one namespace, looked up by name: a request finds the object it
//! names with a hash lookup instead of scanning every object in the store.

use std::ops::Deref;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// A reflector store of the operator's namespace. Derefs to the [`Store`] for listing.
#[derive(Clone)]
pub struct Cache<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    // Shared: routers clone their state, caches included, for every request.
    namespace: Arc<str>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Cache<K> {
    pub fn new(store: Store<K>, namespace: impl Into<String>) -> Self {
        Self { store, namespace: Arc::from(namespace.into()) }
    }

    /// The object named `name`, if the cache holds it.
    pub fn get(&self, name: &str) -> Option<Arc<K>> {
        self.store.get(&ObjectRef::new(name).within(self.namespace.as_ref()))
    }

    /// The object named `name`, unless it is being deleted (a deleted provider or key stops
    /// counting the moment its deletion starts, not when its finalizers finish).
    pub fn live(&self, name: &str) -> Option<Arc<K>> {
        self.get(name).filter(|o| o.meta().deletion_timestamp.is_none())
    }
}

impl<K: Resource<DynamicType = ()> + 'static> Deref for Cache<K> {
    type Target = Store<K>;
    fn deref(&self) -> &Store<K> {
        &self.store
    }
}

/// Watches `api` (in `namespace`) into a cache, retrying with backoff on watch errors.
pub fn watch<K>(api: Api<K>, namespace: &str, config: watcher::Config) -> Cache<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config).default_backoff().reflect(writer).touched_objects();
    tokio::spawn(async move {
        stream
            .for_each(|event| async move {
                if let Err(e) = event {
                    tracing::warn!(error = %e, kind = %K::kind(&()), "watch error; retrying");
                }
            })
            .await;
    });
    Cache::new(reader, namespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::watcher::Event;

    fn cm(ns: &str, name: &str, deleting: bool) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.name = Some(name.into());
        c.metadata.namespace = Some(ns.into());
        if deleting {
            c.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
        }
        c
    }

    #[test]
    fn finds_by_name_within_its_namespace() {
        let (reader, mut writer) = reflector::store();
        for c in [cm("infra", "a", false), cm("infra", "gone", true), cm("other", "b", false)] {
            writer.apply_watcher_event(&Event::Apply(c));
        }
        let cache = Cache::new(reader, "infra");
        assert!(cache.get("a").is_some());
        assert!(cache.get("b").is_none(), "another namespace's object is not found");
        assert!(cache.get("gone").is_some());
        assert!(cache.live("gone").is_none());
        assert_eq!(cache.state().len(), 3);
    }
}
