//! Cross-namespace references and the ReferenceGrants that permit them.

use crate::objects::{Kind, Objects};

/// The referring side of a reference: an object kind in a namespace.
#[derive(Clone, Copy, Debug)]
pub struct From<'a> {
    /// The referring object's kind (`HTTPRoute`, `Gateway`).
    pub kind: Kind,
    /// Its namespace.
    pub namespace: &'a str,
}

/// The referenced side: an object of a kind in a namespace.
#[derive(Clone, Copy, Debug)]
pub struct To<'a> {
    /// The referenced object's kind (`Service`, `Secret`).
    pub kind: Kind,
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
}

/// Whether `from` may refer to `to`: always within a namespace; across
/// namespaces only when a ReferenceGrant in `to`'s namespace allows it.
pub fn permitted(objects: &Objects, from: From<'_>, to: To<'_>) -> bool {
    if from.namespace == to.namespace {
        return true;
    }
    objects.reference_grants_in(to.namespace).any(|grant| {
        let spec = &grant.spec;
        spec.from.iter().any(|f| {
            f.group == from.kind.group()
                && f.kind == from.kind.as_str()
                && f.namespace == from.namespace
        }) && spec.to.iter().any(|t| {
            t.group == to.kind.group()
                && t.kind == to.kind.as_str()
                && t.name
                    .as_deref()
                    .is_none_or(|name| name.is_empty() || name == to.name)
        })
    })
}

#[cfg(test)]
mod tests;
