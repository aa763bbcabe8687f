//! Cluster tests: ferry-control against a real kube-apiserver 1.20 and etcd
//! (ferry-harness), in-process or as its binary.

mod support;

mod ca;
mod deployer;
mod discovery;
mod grpc;
mod leader;
mod readiness;
mod secrets;
mod status;
mod webhook;
