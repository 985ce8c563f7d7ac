//! The cluster: etcd, kube-apiserver, kube-controller-manager, istiod, operator, webhook, gateway (work in progress).
