# Sourced by demos/cluster.sh once the scenario runs: tries both routes and
# prints the lines to try again.
gw=$(kubectl -n sample-ingress get service sample-gateway-ferry -o jsonpath='{.spec.clusterIP}')
printf '\nNorth-south, through the Gateway (40 requests):\n'
for _ in $(seq 40); do
  curl -s -H 'Host: helloworld.sample.com' "http://$gw:8080/hello" | head -1
done | sort | uniq -c
printf '\nEast-west, from the meshed client pod to the helloworld Service (200 calls):\n'
kubectl -n sample exec deploy/client -c app -- ferry-echo call http://helloworld:5000/ --count 200
cat <<TRY

Try:
  curl -s -H 'Host: helloworld.sample.com' http://$gw:8080/hello
  kubectl -n sample exec deploy/client -c app -- ferry-echo call http://helloworld:5000/ --count 200
  kubectl gateway describe httproute/helloworld-mesh -n sample
TRY
