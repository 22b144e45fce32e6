// SPDX-License-Identifier: GPL-2.0-or-later
//
// An FPGA through the device plugin API: the Alveo U250 node (tests/fixtures/nodes/alveo-u250.json,
// an XDMA shell's management and user functions) with the fake XRT shim (tests/fakes/fake-xrt.c)
// describing its card. Kubelet must get the resource AMD/Xilinx's own plugin registers,
// xilinx.com/fpga-<shell>-<timestamp>, the card healthy, and for an Allocate what an XRT
// container needs: the management function's /dev/xclmgmt<instance> and the user function's
// render node, and the card's CDI device.
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

const (
	u250Shell     = "xilinx_u250_gen3x16_xdma_shell_4_1"
	u250Timestamp = 1628027999
	u250Card      = "0000:3b:00.0" // the card, named by its lowest function
)

// What the fake shim says of the card: on the user function, as XRT does.
var u250Description = fmt.Sprintf(`{"devices": [{"name": %q, "timestamp": %d,
 "fpga": "xcu250-figd2104-2L-e", "pci": "0000:3b:00.1", "ddr_bytes": 68719476736, "banks": 4,
 "temperature": 41, "pex_mv": 12100, "pex_ma": 2000}]}
`, u250Shell, u250Timestamp)

// fpgaNode runs xpud with the fake XRT on fixture @node in a tree below @tmp and plays kubelet
// against it. Exits 77 when the fake XRT was not built.
func fpgaNode(xpudBin, mkfixture, tmp, node string) {
	lib := filepath.Join(os.Getenv("XPU_FAKE_NVML_DIR"), "xrt", "libxrt_core.so.2")
	if _, err := os.Stat(lib); err != nil {
		fmt.Printf("skip: the fake XRT was not built (%v)\n", err)
		os.Exit(77)
	}
	desc := filepath.Join(tmp, node+"-fake-xrt.json")
	os.WriteFile(desc, []byte(u250Description), 0644)
	resource := fmt.Sprintf("xilinx.com/fpga-%s-%d", u250Shell, u250Timestamp)
	// the fake shim, not XRT's software emulation
	os.Unsetenv("XCL_EMULATION_MODE")
	os.Unsetenv("EMCONFIG_PATH")
	p := runPlugin(xpudBin, mkfixture, tmp, node, resource,
		[]string{"XPU_XRT_LIBRARY=" + lib, "XPU_FAKE_XRT=" + desc})
	if p == nil {
		return
	}
	defer p.stop()

	check(len(p.first.Devices) == 1, "ListAndWatch: %d devices, want 1", len(p.first.Devices))
	check(health(p.first, u250Card) == "Healthy", "ListAndWatch: %s is %q", u250Card,
		health(p.first, u250Card))
	checkAllocate(p.c, []string{u250Card}, nil,
		[]string{"/dev/xclmgmt15104", "/dev/dri/renderD128"},
		[]string{"xpu.dev/fpga=0000-3b-00.0"})
	_, local := p.h.localAPI("GET", "/v1/allocations", "")
	items, _ := local["allocations"].([]interface{})
	check(len(items) == 1, "the grant recorded with the allocation service: %d", len(items))
}
