// Command misbehave fails on purpose. Its config names a failure for the
// configure phase ("configure:loop"); a request names one with its
// X-Misbehave header ("request:trap", "response:grow"), or a test of the
// host's header limits ("request:headerflood", "response:headernames"; see
// headerFlood and OnResponse). Without either, or
// with a mode that ends well ("request:hostwait"), it behaves, answering 204
// with X-Instance naming its instance and X-Config echoing its config, so
// tests see the host still serving, instances being replaced and which
// version answered.
package main

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/talowa/wedge/sdk"
	"github.com/talowa/wedge/sdk/hostcall"
	"github.com/talowa/wedge/wasm/abi"
)

type plugin struct{ id, config string }

var (
	sink    [][]byte
	counter int
	anchor  byte
)

// misbehave does what mode says and returns the action to return, if the
// mode returns at all.
func misbehave(mode string) (sdk.Action, bool) {
	if n, ok := strings.CutPrefix(mode, "waitspin:"); ok { // waits, then computes n rounds, and behaves
		hostWait()
		rounds, _ := strconv.Atoi(n)
		for i := range rounds {
			counter = counter*31 + i
		}
		return 0, false
	}
	switch mode {
	case "trap": // a real Wasm trap: a load far outside linear memory
		p := (*byte)(unsafe.Add(unsafe.Pointer(&anchor), 1<<31))
		anchor = *p
	case "panic":
		panic("misbehave: deliberate panic")
	case "exit":
		os.Exit(3)
	case "loop":
		for {
			counter++
		}
	case "grow":
		for {
			sink = append(sink, make([]byte, 1<<20))
		}
	case "sleep":
		time.Sleep(time.Hour)
	case "digestloop": // a loop whose time goes into host calls, not loop headers
		buf := make([]byte, 4<<20)
		for {
			sdk.Digest(abi.DigestSHA512, nil, buf)
		}
	case "hostwait": // slow only for waiting in host calls: a busy machine
		for range 4 {
			hostWait()
			spin()
		}
		return 0, false
	case "hostwaitloop": // waits in a host call, then runs away
		hostWait()
		for {
			counter++
		}
	case "oob": // a host call with a buffer outside linear memory
		bad := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(&anchor), 1<<31)), 64)
		hostcall.HeaderGet(abi.MsgRequest, []byte("X-Misbehave"), bad)
	case "log": // behaves, logging one record for the log tests
		sdk.Info("misbehave: deliberate log", "k", "v")
		return 0, false
	case "fail":
		return sdk.Fail(errors.New("misbehave: deliberate failure")), true
	case "badaction":
		return 7, true
	case "nostatus": // answers without setting a status
		return sdk.Answer, true
	case "bloat": // grow by 8 MiB and keep it: for the recycling test
		sink = append(sink, make([]byte, 8<<20))
		return sdk.Continue, true
	case "bigalloc": // one allocation past the limit, from well below it
		sink = append(sink, make([]byte, 100<<20))
	case "oomtalk": // says "out of memory" without running out, then panics
		println("out of memory? no")
		var s []int
		_ = s[counter+1]
	}
	return 0, false
}

// headerFlood adds empty-valued response fields of distinct names until
// the host refuses one, or 20,000, then asks for the names; it answers
// "accepted N refused E names L".
func headerFlood(resp sdk.Response) sdk.Action {
	accepted, refused := 0, int32(0)
	for i := range 20000 {
		if r := hostcall.HeaderAdd(abi.MsgResponse, []byte("X-F"+strconv.Itoa(i)), nil); r != 0 {
			refused = r
			break
		}
		accepted++
	}
	names := hostcall.HeaderNames(abi.MsgResponse, nil)
	return resp.Answer(200, []byte("accepted "+strconv.Itoa(accepted)+" refused "+strconv.Itoa(int(refused))+
		" names "+strconv.Itoa(int(names))))
}

// spin runs through enough loop headers for the host to check the call's
// deadline: a host call past it fails the call here.
func spin() {
	for range 1 << 14 {
		counter++
	}
}

// hostWait makes a host call that the test's rate limiter answers slowly,
// without using CPU: what a guest sees when its thread waits for a core.
func hostWait() {
	sdk.Limit{Count: 1, Period: time.Second}.Take([]byte("misbehave-wait"), 1)
}

func (p *plugin) Configure(cfg []byte) error {
	phase, mode, _ := strings.Cut(string(cfg), ":")
	if phase == "configure" {
		if act, ok := misbehave(mode); ok && act == abi.ActionFail {
			return errors.New("misbehave: configure refused")
		}
	}
	p.config = string(cfg)
	var b [8]byte
	sdk.Random(b[:])
	p.id = strconv.FormatUint(uint64(*(*uint64)(unsafe.Pointer(&b))), 36)
	return nil
}

func (p *plugin) OnRequest(req sdk.Request, resp sdk.Response) sdk.Action {
	phase, mode, _ := strings.Cut(req.Header().Get("X-Misbehave"), ":")
	if phase == "response" && mode == "headernames" {
		return sdk.Continue // for the origin's answer
	}
	if phase == "request" {
		if mode == "headerflood" {
			return headerFlood(resp)
		}
		if act, ok := misbehave(mode); ok && act != sdk.Continue {
			return act
		}
	}
	resp.Header().Set("X-Instance", p.id)
	resp.Header().Set("X-Config", p.config)
	return resp.Answer(204, nil)
}

func (p *plugin) OnResponse(req sdk.Request, resp sdk.Response) sdk.Action {
	if phase, mode, _ := strings.Cut(req.Header().Get("X-Misbehave"), ":"); phase == "response" {
		if mode == "headernames" { // the names of the response as it came
			// Past the host's first look at the call's CPU clock (a
			// wait, then loop headers), so the CPU time header_names
			// takes counts against the deadline.
			hostWait()
			spin()
			resp.Header().Set("X-Names-Len", strconv.Itoa(int(hostcall.HeaderNames(abi.MsgResponse, nil))))
			spin()
			return sdk.Continue
		}
		if act, ok := misbehave(mode); ok {
			return act
		}
	}
	return sdk.Continue
}

func init() { sdk.Register(&plugin{}) }

func main() {}
