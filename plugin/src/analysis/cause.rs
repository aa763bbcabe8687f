//! The precise check behind each refusal: the stable issue codes of
//! `check` and their one-line fixes.

/// The precise check behind a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// The parent object does not exist.
    ParentNotFound,
    /// No listener has the `sectionName`.
    SectionNameNotFound,
    /// No listener or Service port has the parentRef's `port`.
    ParentPortNotFound,
    /// The listener does not admit routes from the route's namespace.
    NamespaceNotAllowed,
    /// The listener does not admit the route's kind.
    KindNotAllowed,
    /// No hostname in common.
    HostnameMismatch,
    /// The parent is of a kind Ferry does not attach to.
    ParentKindUnsupported,
    /// The backend is not a Service.
    BackendKindInvalid,
    /// The backend Service does not exist.
    BackendNotFound,
    /// The backend Service lacks the port.
    BackendPortNotFound,
    /// A cross-namespace backend without a ReferenceGrant.
    MissingReferenceGrant,
}

// === impl Cause ===

impl Cause {
    /// The stable issue code `check` prints.
    pub fn code(self) -> &'static str {
        match self {
            Self::ParentNotFound => "GW101",
            Self::SectionNameNotFound => "GW102",
            Self::ParentPortNotFound => "GW103",
            Self::NamespaceNotAllowed => "GW104",
            Self::KindNotAllowed => "GW105",
            Self::HostnameMismatch => "GW106",
            Self::ParentKindUnsupported => "GW107",
            Self::BackendNotFound => "GW201",
            Self::BackendPortNotFound => "GW202",
            Self::MissingReferenceGrant => "GW203",
            Self::BackendKindInvalid => "GW204",
        }
    }

    /// The one-line fix.
    pub fn fix(self) -> &'static str {
        match self {
            Self::ParentNotFound => {
                "create the parent, or fix the parentRef's name, namespace and kind"
            }
            Self::SectionNameNotFound => {
                "set sectionName to one of the Gateway's listener names, or remove it"
            }
            Self::ParentPortNotFound => "set port to a port the parent listens on, or remove it",
            Self::NamespaceNotAllowed => {
                "label the route's namespace to match the listener's allowedRoutes.namespaces, or widen it on the Gateway"
            }
            Self::KindNotAllowed => {
                "add the route's kind to the listener's allowedRoutes.kinds, or attach to a listener of the right protocol"
            }
            Self::HostnameMismatch => {
                "make a route hostname match the listener's hostname (or drop the route's hostnames)"
            }
            Self::ParentKindUnsupported => {
                "use a Gateway (group gateway.networking.k8s.io) or a Service (group \"\") as parent"
            }
            Self::BackendNotFound => {
                "create the Service, or fix the backendRef's name and namespace"
            }
            Self::BackendPortNotFound => "set the backendRef's port to one of the Service's ports",
            Self::MissingReferenceGrant => {
                "create a ReferenceGrant in the backend's namespace from the route's kind and namespace to the Service"
            }
            Self::BackendKindInvalid => "refer to a core Service (group \"\", kind Service)",
        }
    }
}
