// SPDX-License-Identifier: GPL-2.0-or-later
//
// Plays kubelet against the real xpud with grpc-go, the library kubelet itself uses: it
// serves Registration on kubelet.sock, receives xpud's registration, dials the plugin socket
// the way kubelet does (the socket path as the target, so it becomes :authority), and checks
// every device plugin method, a health change, a cordon and a repartition seen through
// ListAndWatch, a kubelet restart, bad input and a clean stop. With -bench N it also measures
// the Allocate round trip and the ListAndWatch update latency; with -amd it checks amd.com/gpu
// on the AMD nodes instead (kubelet-amd.go), with -fpga an FPGA's resource on the Alveo node
// with the fake XRT (kubelet-fpga.go). Exits 0 when every check passed, 1 otherwise.
//
// Built offline with Debian's golang-go and golang-google-grpc-dev (GO111MODULE=off) by
// tests/k8s/run.sh, which ctest runs.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	api "xpu.dev/tests/k8s/v1beta1"
)

const resource = "nvidia.com/gpu"

var failures int

func check(ok bool, format string, args ...interface{}) bool {
	if ok {
		fmt.Printf("ok   "+format+"\n", args...)
		return true
	}
	failures++
	fmt.Printf("FAIL "+format+"\n", args...)
	return false
}

func fatal(format string, args ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", args...)
	os.Exit(1)
}

// --- kubelet's Registration service ------------------------------------------------------------

type registration struct {
	got chan *api.RegisterRequest
}

func (r *registration) Register(ctx context.Context, req *api.RegisterRequest) (*api.Empty, error) {
	r.got <- req
	return &api.Empty{}, nil
}

func serveRegistration(path string, reg *registration) *grpc.Server {
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		fatal("listen on %s: %v", path, err)
	}
	s := grpc.NewServer()
	api.RegisterRegistrationServer(s, reg)
	go s.Serve(l)
	return s
}

func waitRegister(reg *registration, timeout time.Duration) (*api.RegisterRequest, time.Duration) {
	start := time.Now()
	select {
	case req := <-reg.got:
		return req, time.Since(start)
	case <-time.After(timeout):
		return nil, timeout
	}
}

// --- the plugin, dialled the way kubelet dials it ------------------------------------------------

func dial(path string) *grpc.ClientConn {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, path, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		}))
	if err != nil {
		fatal("dial %s: %v", path, err)
	}
	return conn
}

type listStream struct {
	updates chan *api.ListAndWatchResponse
	ended   chan error
}

func listAndWatch(c api.DevicePluginClient) *listStream {
	stream, err := c.ListAndWatch(context.Background(), &api.Empty{})
	if err != nil {
		fatal("ListAndWatch: %v", err)
	}
	s := &listStream{make(chan *api.ListAndWatchResponse, 64), make(chan error, 1)}
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				s.ended <- err
				return
			}
			s.updates <- m
		}
	}()
	return s
}

func (s *listStream) next(timeout time.Duration) *api.ListAndWatchResponse {
	select {
	case m := <-s.updates:
		return m
	case <-time.After(timeout):
		return nil
	}
}

func health(m *api.ListAndWatchResponse, id string) string {
	if m == nil {
		return ""
	}
	for _, d := range m.Devices {
		if d.ID == id {
			return d.Health
		}
	}
	return "absent"
}

func numa(m *api.ListAndWatchResponse, id string) int64 {
	for _, d := range m.Devices {
		if d.ID == id && d.Topology != nil && len(d.Topology.Nodes) == 1 {
			return d.Topology.Nodes[0].ID
		}
	}
	return -1
}

// waitHealth reads updates until @id has @want, and says how long it took (or -1).
func (s *listStream) waitHealth(id, want string, timeout time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < timeout {
		m := s.next(timeout - time.Since(start))
		if health(m, id) == want {
			return time.Since(start)
		}
	}
	return -1
}

// --- the fake host --------------------------------------------------------------------------------

type host struct {
	root, kubelet, apiSocket, log string
	xpud                          *exec.Cmd
}

func (h *host) uevent(action, devpath string) {
	conn, err := net.Dial("unixgram", filepath.Join(h.root, "run/xpud-uevent.sock"))
	if err != nil {
		fatal("uevent socket: %v", err)
	}
	defer conn.Close()
	msg := fmt.Sprintf("%s@%s\x00ACTION=%s\x00DEVPATH=%s\x00SUBSYSTEM=pci\x00SEQNUM=1\x00",
		action, devpath, action, devpath)
	conn.Write([]byte(msg))
}

// setDriver binds or unbinds (driver "") a PCI function of the fixture as the kernel shows it
// (the driver link and the DRIVER= line of uevent), and says so by uevent.
func (h *host) setDriver(addr, devpath, driver string) {
	dir := filepath.Join(h.root, "sys/bus/pci/devices", addr)
	data, err := os.ReadFile(filepath.Join(dir, "uevent"))
	if err != nil {
		fatal("fixture: %v", err)
	}
	var lines []string
	if driver != "" {
		lines = append(lines, "DRIVER="+driver)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if !strings.HasPrefix(l, "DRIVER=") {
			lines = append(lines, l)
		}
	}
	os.WriteFile(filepath.Join(dir, "uevent"), []byte(strings.Join(lines, "\n")+"\n"), 0644)
	if driver == "" {
		os.Remove(filepath.Join(dir, "driver"))
		h.uevent("unbind", devpath)
		return
	}
	os.Symlink("../../../../../../bus/pci/drivers/"+driver, filepath.Join(dir, "driver"))
	h.uevent("bind", devpath)
}

// newHost writes fixture @node into a fresh tree below @tmp.
func newHost(mkfixture, tmp, node string) *host {
	h := &host{root: filepath.Join(tmp, "root"), kubelet: filepath.Join(tmp, "device-plugins"),
		log: filepath.Join(tmp, "xpud.log")}
	h.apiSocket = filepath.Join(h.root, "run/xpud.sock")
	if out, err := exec.Command(mkfixture, "--node", node, h.root).CombinedOutput(); err != nil {
		fatal("xpu-mkfixture: %v: %s", err, out)
	}
	os.MkdirAll(h.kubelet, 0755)
	return h
}

// start runs xpud on the tree with config file @conf and @env added to its environment; the
// channel gets its exit.
func (h *host) start(xpudBin, conf string, env ...string) chan error {
	logf, _ := os.Create(h.log)
	h.xpud = exec.Command(xpudBin, "--root", h.root, "--socket", h.apiSocket, "--kubelet-dir",
		h.kubelet, "--log-level", "debug", "--config", conf)
	h.xpud.Stderr = logf
	h.xpud.Stdout = logf
	h.xpud.Env = append(os.Environ(), env...)
	if err := h.xpud.Start(); err != nil {
		fatal("start xpud: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- h.xpud.Wait() }()
	return exited
}

func (h *host) dumpLogOnFailure() {
	if failures > 0 {
		data, _ := os.ReadFile(h.log)
		fmt.Printf("--- xpud log ---\n%s", data)
	}
}

func (h *host) localAPI(method, path, body string) (int, map[string]interface{}) {
	c := http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", h.apiSocket)
		}}}
	req, _ := http.NewRequest(method, "http://xpud"+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		fatal("local API %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var doc map[string]interface{}
	json.Unmarshal(data, &doc)
	return resp.StatusCode, doc
}

// checkAllocate asks for @ids in one container: the response must set the variables of @envs
// (others may be there too), give exactly the device @nodes (read-write, at the same path in
// the container) and the CDI devices @cdi, in this order, and no mounts or annotations.
func checkAllocate(c api.DevicePluginClient, ids []string, envs map[string]string, nodes,
	cdi []string) {
	resp, err := c.Allocate(context.Background(), &api.AllocateRequest{
		ContainerRequests: []*api.ContainerAllocateRequest{{DevicesIds: ids}}})
	if !check(err == nil && len(resp.ContainerResponses) == 1, "Allocate %v: %v", ids, err) {
		return
	}
	cr := resp.ContainerResponses[0]
	for k, v := range envs {
		check(cr.Envs[k] == v, "Allocate %v: %s=%q, want %q", ids, k, cr.Envs[k], v)
	}
	var got []string
	for _, d := range cr.Devices {
		got = append(got, d.HostPath)
		check(d.ContainerPath == d.HostPath && d.Permissions == "rw",
			"Allocate %v: DeviceSpec %s -> %s (%s)", ids, d.HostPath, d.ContainerPath,
			d.Permissions)
	}
	nodes = append([]string(nil), nodes...)
	sort.Strings(got)
	sort.Strings(nodes)
	check(strings.Join(got, " ") == strings.Join(nodes, " "),
		"Allocate %v: DeviceSpecs %v, want exactly %v", ids, got, nodes)
	var gotCDI []string
	for _, d := range cr.CdiDevices {
		gotCDI = append(gotCDI, d.Name)
	}
	check(strings.Join(gotCDI, " ") == strings.Join(cdi, " "), "Allocate %v: CDIDevices %v, want %v",
		ids, gotCDI, cdi)
	check(len(cr.Mounts) == 0 && len(cr.Annotations) == 0, "Allocate %v: no Mounts or Annotations: %v %v",
		ids, cr.Mounts, cr.Annotations)
}

// pluginRun is xpud on a fixture node, registered with kubelet for one resource, and the first
// list of devices it sent for it.
type pluginRun struct {
	h         *host
	c         api.DevicePluginClient
	first     *api.ListAndWatchResponse
	node      string
	before    int // failures before this run
	exited    chan error
	conn      *grpc.ClientConn
	regServer *grpc.Server
}

// runPlugin writes fixture @node into a tree below @tmp, starts xpud on it with @env added to
// its environment, and plays kubelet until xpud registered @resource and listed its devices;
// nil (after a failed check) when it did not.
func runPlugin(xpudBin, mkfixture, tmp, node, resource string, env []string) *pluginRun {
	fmt.Printf("--- %s on %s\n", resource, node)
	p := &pluginRun{node: node, before: failures}
	dir := filepath.Join(tmp, node)
	os.MkdirAll(dir, 0755)
	p.h = newHost(mkfixture, dir, node)
	// A long directory: with an FPGA's resource (its shell and timestamp) the socket's path
	// would not fit a sockaddr_un, and xpud names the socket by the resource's hash.
	kubelet := filepath.Join(dir, "var-lib-kubelet", "device-plugins")
	if err := os.MkdirAll(kubelet, 0755); err != nil {
		fatal("mkdir: %v", err)
	}
	p.h.kubelet = kubelet
	reg := &registration{got: make(chan *api.RegisterRequest, 16)}
	p.regServer = serveRegistration(filepath.Join(p.h.kubelet, "kubelet.sock"), reg)
	conf := filepath.Join(dir, "xpud.yaml")
	os.WriteFile(conf, []byte("health-probation: 0\n"), 0644)
	p.exited = p.h.start(xpudBin, conf, env...)

	req, _ := waitRegister(reg, 10*time.Second)
	if !check(req != nil, "%s: xpud registered within 10 s", node) {
		p.end()
		return nil
	}
	endpoint := "xpud-" + strings.ReplaceAll(resource, "/", "_") + ".sock"
	if len(p.h.kubelet)+1+len(endpoint) >= 108 {
		h := fnv.New64a()
		h.Write([]byte(resource))
		endpoint = fmt.Sprintf("xpud-%016x.sock", h.Sum64())
	}
	check(req.ResourceName == resource, "Register: resource %q", req.ResourceName)
	check(req.Endpoint == endpoint, "Register: endpoint %q", req.Endpoint)
	p.conn = dial(filepath.Join(p.h.kubelet, req.Endpoint))
	p.c = api.NewDevicePluginClient(p.conn)
	p.first = listAndWatch(p.c).next(5 * time.Second)
	if !check(p.first != nil, "ListAndWatch sent the devices") {
		p.end()
		return nil
	}
	return p
}

// stop ends xpud with SIGTERM, which must make it exit cleanly, and the run.
func (p *pluginRun) stop() {
	p.h.xpud.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		check(err == nil, "xpud exited cleanly: %v", err)
	case <-time.After(10 * time.Second):
		check(false, "xpud did not exit")
	}
	p.end()
}

// end kills xpud if it still runs, and shows its log when a check of this run failed.
func (p *pluginRun) end() {
	p.h.xpud.Process.Kill()
	if failures > p.before {
		data, _ := os.ReadFile(p.h.log)
		fmt.Printf("--- xpud log (%s) ---\n%s", p.node, data)
	}
	if p.conn != nil {
		p.conn.Close()
	}
	p.regServer.Stop()
	os.RemoveAll(p.h.kubelet)
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

func main() {
	xpudBin := flag.String("xpud", os.Getenv("XPUD_BIN"), "xpud binary")
	mkfixture := flag.String("mkfixture", os.Getenv("XPU_MKFIXTURE_BIN"), "xpu-mkfixture binary")
	node := flag.String("node", "hgx-h100", "embedded fixture node")
	bench := flag.Int("bench", 0, "Allocate round trips to time (0: no benchmark)")
	keep := flag.Bool("keep", false, "keep the temporary tree")
	amd := flag.String("amd", "", "AMD fixture nodes to check amd.com/gpu on, comma-separated "+
		"(mi300x, mi300x-cpx), instead of the NVIDIA checks")
	fpga := flag.String("fpga", "", "FPGA fixture nodes to check xilinx.com/fpga-* on with the "+
		"fake XRT, comma-separated (alveo-u250), instead of the NVIDIA checks")
	flag.Parse()

	tmp, err := os.MkdirTemp("", "xpu-k8s-")
	if err != nil {
		fatal("mkdtemp: %v", err)
	}
	if !*keep {
		defer os.RemoveAll(tmp)
	}
	if *amd != "" || *fpga != "" {
		for _, n := range strings.Split(*amd, ",") {
			if n != "" {
				amdNode(*xpudBin, *mkfixture, tmp, n)
			}
		}
		for _, n := range strings.Split(*fpga, ",") {
			if n != "" {
				fpgaNode(*xpudBin, *mkfixture, tmp, n)
			}
		}
		if failures > 0 {
			fmt.Printf("%d check(s) failed\n", failures)
			os.Exit(1)
		}
		fmt.Println("all checks passed")
		return
	}
	h := newHost(*mkfixture, tmp, *node)
	kubeletSock := filepath.Join(h.kubelet, "kubelet.sock")
	reg := &registration{got: make(chan *api.RegisterRequest, 16)}
	regServer := serveRegistration(kubeletSock, reg)

	// A pre-start hook that logs what it was given, and fails while hook.fail exists.
	hook := filepath.Join(tmp, "hook.sh")
	hookLog := filepath.Join(tmp, "hook.log")
	hookFail := filepath.Join(tmp, "hook.fail")
	os.WriteFile(hook, []byte(fmt.Sprintf("#!/bin/sh\necho \"$* $XPU_RESOURCE $XPU_DEVICE_IDS\" >>%s\n"+
		"exec test ! -e %s\n", hookLog, hookFail)), 0755)
	conf := filepath.Join(tmp, "xpud.yaml")
	// no health probation: a rebound driver is re-advertised at the next look
	os.WriteFile(conf, []byte("kubelet-pre-start-hook: "+hook+"\nhealth-probation: 0\n"), 0644)

	exited := h.start(*xpudBin, conf)
	defer h.dumpLogOnFailure()
	defer h.xpud.Process.Kill()

	// Registration: what kubelet checks before it dials the endpoint.
	req, _ := waitRegister(reg, 10*time.Second)
	if req == nil {
		fatal("xpud did not register within 10 s")
	}
	check(req.Version == "v1beta1", "Register: version %q", req.Version)
	check(req.ResourceName == resource, "Register: resource %q", req.ResourceName)
	check(req.Endpoint == "xpud-nvidia.com_gpu.sock", "Register: endpoint %q", req.Endpoint)
	check(req.Options != nil && req.Options.GetPreferredAllocationAvailable &&
		req.Options.PreStartRequired, "Register: options %v", req.Options)
	plugin := filepath.Join(h.kubelet, req.Endpoint)

	conn := dial(plugin)
	c := api.NewDevicePluginClient(conn)
	ctx := context.Background()

	opts, err := c.GetDevicePluginOptions(ctx, &api.Empty{})
	check(err == nil && opts.GetPreferredAllocationAvailable && opts.PreStartRequired,
		"GetDevicePluginOptions: %v %v", opts, err)

	// ListAndWatch: every GPU, healthy, with its NUMA node.
	law := listAndWatch(c)
	first := law.next(5 * time.Second)
	if first == nil {
		fatal("ListAndWatch sent nothing")
	}
	check(len(first.Devices) == 8, "ListAndWatch: %d devices", len(first.Devices))
	nodes := map[int64][]string{}
	for _, d := range first.Devices {
		check(d.Health == "Healthy", "ListAndWatch: %s is %s", d.ID, d.Health)
		n := numa(first, d.ID)
		check(n == 0 || n == 1, "ListAndWatch: %s on NUMA node %d", d.ID, n)
		nodes[n] = append(nodes[n], d.ID)
	}
	var all []string
	for _, d := range first.Devices {
		all = append(all, d.ID)
	}

	// A health change reaches the stream: the driver of one GPU goes away and comes back.
	const sick = "0000:18:00.0"
	const sickPath = "/devices/pci0000:15/0000:18:00.0"
	h.setDriver(sick, sickPath, "")
	took := law.waitHealth(sick, "Unhealthy", 5*time.Second)
	check(took >= 0, "ListAndWatch: %s turned Unhealthy after %v", sick, took)
	_, err = c.Allocate(ctx, &api.AllocateRequest{ContainerRequests: []*api.ContainerAllocateRequest{
		{DevicesIds: []string{sick}}}})
	check(status.Code(err) == codes.FailedPrecondition,
		"Allocate of an unhealthy device refused: %v", err)
	h.setDriver(sick, sickPath, "nvidia")
	took = law.waitHealth(sick, "Healthy", 5*time.Second)
	check(took >= 0, "ListAndWatch: %s Healthy again after %v", sick, took)

	// A cordon withdraws the GPU from kubelet (Unhealthy, Allocate refused); uncordon brings
	// it back.
	code, _ := h.localAPI("POST", "/v1/cordon", `{"device": "`+sick+`", "reason": "maintenance"}`)
	check(code == 200, "cordon %s: HTTP %d", sick, code)
	took = law.waitHealth(sick, "Unhealthy", 5*time.Second)
	check(took >= 0, "ListAndWatch: cordoned %s turned Unhealthy after %v", sick, took)
	_, err = c.Allocate(ctx, &api.AllocateRequest{ContainerRequests: []*api.ContainerAllocateRequest{
		{DevicesIds: []string{sick}}}})
	check(status.Code(err) == codes.FailedPrecondition,
		"Allocate of a cordoned device refused: %v", err)
	code, _ = h.localAPI("POST", "/v1/uncordon", `{"device": "`+sick+`"}`)
	check(code == 200, "uncordon %s: HTTP %d", sick, code)
	took = law.waitHealth(sick, "Healthy", 5*time.Second)
	check(took >= 0, "ListAndWatch: uncordoned %s Healthy again after %v", sick, took)

	// GetPreferredAllocation: must-include respected, size honoured, the rest NUMA-local.
	must := nodes[1][0]
	pref, err := c.GetPreferredAllocation(ctx, &api.PreferredAllocationRequest{
		ContainerRequests: []*api.ContainerPreferredAllocationRequest{{
			AvailableDeviceIDs: all, MustIncludeDeviceIDs: []string{must},
			AllocationSize: 2}}})
	if check(err == nil && len(pref.ContainerResponses) == 1, "GetPreferredAllocation: %v", err) {
		ids := pref.ContainerResponses[0].DeviceIDs
		check(len(ids) == 2 && ids[0] == must, "GetPreferredAllocation: %v includes %s", ids, must)
		check(len(ids) == 2 && numa(first, ids[1]) == 1,
			"GetPreferredAllocation: %v on must-include's NUMA node", ids)
	}
	pref, err = c.GetPreferredAllocation(ctx, &api.PreferredAllocationRequest{
		ContainerRequests: []*api.ContainerPreferredAllocationRequest{{
			AvailableDeviceIDs: nodes[0][:2], AllocationSize: 2}}})
	check(err == nil && len(pref.ContainerResponses[0].DeviceIDs) == 2,
		"GetPreferredAllocation: only the available ones: %v", err)
	_, err = c.GetPreferredAllocation(ctx, &api.PreferredAllocationRequest{
		ContainerRequests: []*api.ContainerPreferredAllocationRequest{{
			AvailableDeviceIDs: all[:1], AllocationSize: 3}}})
	check(status.Code(err) == codes.InvalidArgument, "GetPreferredAllocation: size > available: %v", err)

	// Allocate: every field, for exactly the ids asked.
	grant := []string{nodes[0][0], nodes[0][1]}
	resp, err := c.Allocate(ctx, &api.AllocateRequest{ContainerRequests: []*api.ContainerAllocateRequest{
		{DevicesIds: grant}}})
	if !check(err == nil && len(resp.ContainerResponses) == 1, "Allocate %v: %v", grant, err) {
		os.Exit(1)
	}
	cr := resp.ContainerResponses[0]
	_, local := h.localAPI("GET", "/v1/allocations", "")
	var view map[string]interface{}
	if items, ok := local["allocations"].([]interface{}); ok && len(items) == 1 {
		view, _ = items[0].(map[string]interface{})
	}
	check(view != nil, "the grant is recorded with the allocation service: %v", local)
	if view != nil {
		owner, _ := view["owner"].(map[string]interface{})
		check(owner["kind"] == "pod", "recorded with owner kind pod: %v", owner)
		env, _ := view["env"].(map[string]interface{})
		check(len(env) > 0 && len(env) == len(cr.Envs), "Envs: %v (local view %v)", cr.Envs, env)
		for k, v := range env {
			check(cr.Envs[k] == v, "Envs[%s] = %q", k, cr.Envs[k])
		}
		nodesView, _ := view["device_nodes"].([]interface{})
		check(len(cr.Devices) == len(nodesView) && len(cr.Devices) >= 2,
			"DeviceSpecs: %d (local view %d)", len(cr.Devices), len(nodesView))
		for i, d := range cr.Devices {
			check(i < len(nodesView) && d.HostPath == nodesView[i] &&
				d.ContainerPath == d.HostPath && d.Permissions == "rw",
				"DeviceSpec %s -> %s (%s)", d.HostPath, d.ContainerPath, d.Permissions)
		}
		cdiView, _ := view["cdi_devices"].([]interface{})
		check(len(cr.CdiDevices) == 2 && len(cdiView) == 2, "CDIDevices: %v", cr.CdiDevices)
		for i, d := range cr.CdiDevices {
			want := "xpu.dev/gpu=" + strings.NewReplacer(":", "-", "/", "-").Replace(grant[i])
			check(d.Name == want && d.Name == cdiView[i], "CDIDevice %q", d.Name)
		}
	}
	check(len(cr.Mounts) == 0 && len(cr.Annotations) == 0, "no Mounts or Annotations: %v %v",
		cr.Mounts, cr.Annotations)
	check(strings.Contains(cr.Envs["NVIDIA_VISIBLE_DEVICES"], ","),
		"NVIDIA_VISIBLE_DEVICES names both GPUs: %q", cr.Envs["NVIDIA_VISIBLE_DEVICES"])

	// Kubelet sends ids again (an init container's devices reused): same answer, no new grant.
	again, err := c.Allocate(ctx, &api.AllocateRequest{ContainerRequests: []*api.ContainerAllocateRequest{
		{DevicesIds: grant}}})
	check(err == nil && fmt.Sprint(again.ContainerResponses[0].Envs) == fmt.Sprint(cr.Envs),
		"Allocate is idempotent: %v", err)
	_, local = h.localAPI("GET", "/v1/allocations", "")
	items, _ := local["allocations"].([]interface{})
	check(len(items) == 1, "still one recorded allocation: %d", len(items))

	// The local API does not hand out what kubelet manages.
	code, doc := h.localAPI("POST", "/v1/allocations", `{"resource":"nvidia.com/gpu","count":1}`)
	msg, _ := json.Marshal(doc)
	check(code == 409 && strings.Contains(string(msg), "kubelet"), "local API refuses: %d %s", code, msg)
	code, doc = h.localAPI("POST", "/v1/allocations", `{"slices":["`+nodes[1][1]+`"]}`)
	check(code == 409, "local API refuses explicit slices: %d", code)

	// Bad input.
	_, err = c.Allocate(ctx, &api.AllocateRequest{ContainerRequests: []*api.ContainerAllocateRequest{
		{DevicesIds: []string{"0000:99:00.0"}}}})
	check(status.Code(err) == codes.NotFound, "unknown id refused: %v", err)
	_, err = c.Allocate(ctx, &api.AllocateRequest{ContainerRequests: []*api.ContainerAllocateRequest{
		{DevicesIds: []string{nodes[1][1]}}, {DevicesIds: []string{"nope"}}}})
	check(status.Code(err) == codes.NotFound, "all or nothing: %v", err)
	_, local = h.localAPI("GET", "/v1/allocations", "")
	items, _ = local["allocations"].([]interface{})
	check(len(items) == 1, "nothing recorded for a refused call: %d", len(items))
	_, err = c.Allocate(ctx, &api.AllocateRequest{})
	check(status.Code(err) == codes.InvalidArgument, "empty Allocate refused: %v", err)
	_, err = c.Allocate(ctx, &api.AllocateRequest{ContainerRequests: []*api.ContainerAllocateRequest{
		{DevicesIds: []string{strings.Repeat("x", 5<<20)}}}})
	check(status.Code(err) == codes.ResourceExhausted, "oversized message refused: %v", err)
	_, err = c.PreStartContainer(ctx, &api.PreStartContainerRequest{DevicesIds: grant})
	check(err == nil, "PreStartContainer: %v", err)
	ran, _ := os.ReadFile(hookLog)
	want := resource + " " + strings.Join(grant, " ") + " " + resource + " " + strings.Join(grant, ",")
	check(strings.TrimSpace(string(ran)) == want, "pre-start hook ran with %q, want %q", ran, want)
	os.WriteFile(hookFail, nil, 0644)
	_, err = c.PreStartContainer(ctx, &api.PreStartContainerRequest{DevicesIds: grant})
	check(status.Code(err) == codes.FailedPrecondition && strings.Contains(err.Error(), "exited with status 1"),
		"a failing pre-start hook fails the call: %v", err)
	os.Remove(hookFail)
	_, err = c.GetDevicePluginOptions(ctx, &api.Empty{})
	check(err == nil, "still serving after bad input: %v", err)

	if *bench > 0 {
		var rtt []time.Duration
		for i := 0; i < *bench; i++ {
			start := time.Now()
			_, err := c.Allocate(ctx, &api.AllocateRequest{ContainerRequests: []*api.ContainerAllocateRequest{
				{DevicesIds: grant}}})
			rtt = append(rtt, time.Since(start))
			if err != nil {
				fatal("bench Allocate: %v", err)
			}
		}
		// the baseline: the cheapest call through the same stack (grpc-go, nghttp2, our layer)
		var base []time.Duration
		for i := 0; i < *bench; i++ {
			start := time.Now()
			if _, err := c.GetDevicePluginOptions(ctx, &api.Empty{}); err != nil {
				fatal("bench GetDevicePluginOptions: %v", err)
			}
			base = append(base, time.Since(start))
		}
		var upd []time.Duration
		for i := 0; i < 10; i++ {
			h.setDriver(sick, sickPath, "")
			start := time.Now()
			if law.waitHealth(sick, "Unhealthy", 5*time.Second) < 0 {
				fatal("bench: no update")
			}
			upd = append(upd, time.Since(start))
			h.setDriver(sick, sickPath, "nvidia")
			law.waitHealth(sick, "Healthy", 5*time.Second)
		}
		fmt.Printf("bench Allocate round trip (%d calls, 2 GPUs): median %v p99 %v\n", len(rtt),
			percentile(rtt, 0.5), percentile(rtt, 0.99))
		fmt.Printf("bench GetDevicePluginOptions round trip (baseline): median %v p99 %v\n",
			percentile(base, 0.5), percentile(base, 0.99))
		fmt.Printf("bench ListAndWatch update after a uevent (10 changes): median %v max %v\n",
			percentile(upd, 0.5), percentile(upd, 1))
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", h.xpud.Process.Pid)); err == nil {
			for _, l := range strings.Split(string(st), "\n") {
				if strings.HasPrefix(l, "VmRSS:") || strings.HasPrefix(l, "Threads:") {
					fmt.Printf("bench xpud %s\n", strings.Join(strings.Fields(l), " "))
				}
			}
		}
	}

	// Kubelet restarts: it removes every socket and creates kubelet.sock again.
	regServer.Stop()
	conn.Close()
	os.Remove(kubeletSock)
	os.Remove(plugin)
	time.Sleep(200 * time.Millisecond)
	regServer = serveRegistration(kubeletSock, reg)
	req, took = waitRegister(reg, 3*time.Second)
	check(req != nil && took < time.Second, "re-registered %v after kubelet came back", took)
	conn = dial(plugin)
	c = api.NewDevicePluginClient(conn)
	law = listAndWatch(c)
	m := law.next(5 * time.Second)
	check(m != nil && len(m.Devices) == 8, "ListAndWatch after the restart")

	// A repartition without a drain: an idle GPU becomes two replicas; kubelet sees it leave
	// nvidia.com/gpu and a new resource registered for its replicas, the rest untouched.
	idle := ""
	for _, d := range first.Devices {
		inUse := false
		for _, g := range grant {
			inUse = inUse || g == d.ID
		}
		if !inUse {
			idle = d.ID
		}
	}
	code, _ = h.localAPI("POST", "/v1/repartition", `{"device": "`+idle+`", "layout": "replicas: 2"}`)
	check(code == 202, "repartition %s: HTTP %d", idle, code)
	left := false
	for start := time.Now(); time.Since(start) < 5*time.Second && !left; {
		if u := law.next(time.Second); u != nil && health(u, idle) == "absent" {
			left = true
			check(len(u.Devices) == 7, "ListAndWatch: the other %d GPUs stay", len(u.Devices))
		}
	}
	check(left, "ListAndWatch: repartitioned %s left nvidia.com/gpu", idle)
	// (a re-registration of nvidia.com/gpu after the kubelet restart may come first)
	var shared *api.RegisterRequest
	for start := time.Now(); time.Since(start) < 5*time.Second; {
		r, _ := waitRegister(reg, 5*time.Second-time.Since(start))
		if r == nil || r.ResourceName == resource+".shared" {
			shared = r
			break
		}
	}
	if check(shared != nil, "registered the replicas' resource %s.shared", resource) {
		sconn := dial(filepath.Join(h.kubelet, shared.Endpoint))
		sl := listAndWatch(api.NewDevicePluginClient(sconn)).next(5 * time.Second)
		check(sl != nil && len(sl.Devices) == 2 && health(sl, idle+"/replica-0") == "Healthy" &&
			health(sl, idle+"/replica-1") == "Healthy", "ListAndWatch of the replicas: %v", sl)
		sconn.Close()
	}

	// xpud stops: the stream ends, the socket goes.
	h.xpud.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-law.ended:
		check(err != nil, "ListAndWatch ended at stop: %v", err)
	case <-time.After(5 * time.Second):
		check(false, "ListAndWatch did not end at stop")
	}
	select {
	case err := <-exited:
		check(err == nil, "xpud exited cleanly: %v", err)
	case <-time.After(10 * time.Second):
		check(false, "xpud did not exit")
	}
	_, err = os.Stat(plugin)
	check(os.IsNotExist(err), "plugin socket removed at stop")
	regServer.Stop()
	conn.Close()

	if failures > 0 {
		fmt.Printf("%d check(s) failed\n", failures)
		os.Exit(1)
	}
	fmt.Println("all checks passed")
}
