# Throwaway PKI of the node (sourced by up.sh): a CA, serving and client
# certificates with the standard Kubernetes identities, and a kubeconfig
# per client. ECDSA P-256 keys: quick to make, accepted by every component.
P=$RUN/pki

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$P/$1.key" 2>/dev/null; }
cert() {  # cert NAME SUBJECT [SAN] : NAME.key + NAME.crt signed by the CA
  { echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "${3:-}" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$3"
    else
      echo "extendedKeyUsage=clientAuth"
    fi; } >"$P/$1.ext"
  key "$1"
  openssl req -new -key "$P/$1.key" -subj "$2" -out "$P/$1.csr" 2>/dev/null
  openssl x509 -req -in "$P/$1.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
    -days 7 -extfile "$P/$1.ext" -out "$P/$1.crt" 2>/dev/null
  rm -f "$P/$1.csr" "$P/$1.ext"
}
kubeconfig() {  # kubeconfig NAME : NAME.kubeconfig using NAME.crt/key
  cat >"$P/$1.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: ferry-node
  cluster: {server: "https://$NODE_IP:$API_PORT", certificate-authority: "$P/ca.crt"}
users:
- name: $1
  user: {client-certificate: "$P/$1.crt", client-key: "$P/$1.key"}
contexts:
- name: ferry-node
  context: {cluster: ferry-node, user: $1}
current-context: ferry-node
KC
}

make_pki() {
  mkdir -p "$P"
  key ca
  openssl req -x509 -new -key "$P/ca.key" -days 7 -subj "/CN=ferry-node-ca" -out "$P/ca.crt" 2>/dev/null
  key sa   # signs ServiceAccount tokens
  openssl pkey -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null
  cert apiserver "/CN=kube-apiserver" "IP:$NODE_IP,IP:$SVC_IP_API,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  local u
  for u in "admin:/O=system:masters/CN=admin" \
           "kubelet:/O=system:nodes/CN=system:node:$NODE_NAME" \
           "kube-proxy:/CN=system:kube-proxy" \
           "scheduler:/CN=system:kube-scheduler" \
           "controller-manager:/CN=system:kube-controller-manager" \
           "dns:/CN=ferry-node:dns"; do
    cert "${u%%:*}" "${u#*:}"
    kubeconfig "${u%%:*}"
  done
}
