package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/prometheus/procfs"
)

// listener is a socket a process of the stack accepts connections or
// datagrams on.
type listener struct {
	process string
	pid     int
	proto   string // tcp, tcp6, udp, udp6
	addr    net.IP
	port    uint64
}

func (l listener) String() string {
	return fmt.Sprintf("%s (pid %d) %s %s", l.process, l.pid, l.proto, net.JoinHostPort(l.addr.String(), strconv.FormatUint(l.port, 10)))
}

// tcpListen is TCP_LISTEN in include/net/tcp_states.h.
const tcpListen = 0x0A

// processListeners lists the listening TCP sockets and the bound,
// unconnected UDP sockets that process pid holds, by matching the socket
// inodes of /proc/<pid>/net/{tcp,udp}{,6} (its network namespace) against
// its open files.
func processListeners(name string, pid int) ([]listener, error) {
	proc, err := procfs.NewProc(pid)
	if err != nil {
		return nil, fmt.Errorf("%s (pid %d): %w", name, pid, err)
	}
	targets, err := proc.FileDescriptorTargets()
	if err != nil {
		return nil, fmt.Errorf("%s (pid %d): open files: %w", name, pid, err)
	}
	open := make(map[string]bool, len(targets))
	for _, target := range targets {
		open[target] = true
	}
	ns, err := procfs.NewFS(filepath.Join(procfs.DefaultMountPoint, strconv.Itoa(pid)))
	if err != nil {
		return nil, fmt.Errorf("%s (pid %d): %w", name, pid, err)
	}
	var found []listener
	for _, table := range socketTables(ns) {
		lines, err := table.read()
		if err != nil {
			continue // a kernel without IPv6 has no tcp6 table
		}
		for _, line := range lines {
			if !open[fmt.Sprintf("socket:[%d]", line.Inode)] || !accepts(table.tcp, line.St, line.RemPort) {
				continue
			}
			found = append(found, listener{process: name, pid: pid, proto: table.proto, addr: line.LocalAddr, port: line.LocalPort})
		}
	}
	return found, nil
}

type socketTable struct {
	proto string
	tcp   bool
	read  func() (procfs.NetIPSocket, error)
}

// socketTables are the four tables of a network namespace. procfs
// deprecates its /proc/net readers in favour of netlink, which would be a
// dependency for this one check.
func socketTables(ns procfs.FS) []socketTable {
	return []socketTable{
		{"tcp", true, func() (procfs.NetIPSocket, error) { t, err := ns.NetTCP(); return procfs.NetIPSocket(t), err }},   //nolint:staticcheck // see above
		{"tcp6", true, func() (procfs.NetIPSocket, error) { t, err := ns.NetTCP6(); return procfs.NetIPSocket(t), err }}, //nolint:staticcheck // see above
		{"udp", false, func() (procfs.NetIPSocket, error) { t, err := ns.NetUDP(); return procfs.NetIPSocket(t), err }},
		{"udp6", false, func() (procfs.NetIPSocket, error) { t, err := ns.NetUDP6(); return procfs.NetIPSocket(t), err }},
	}
}

// accepts reports whether a socket takes connections or datagrams from
// anyone: a listening TCP socket, or a UDP socket not connected to a peer.
func accepts(tcp bool, state, remotePort uint64) bool {
	if tcp {
		return state == tcpListen
	}
	return remotePort == 0
}

// exposedListeners lists the listeners of the stack's running processes
// that are not bound to a loopback address. A process that has exited, or
// whose sockets cannot be read, is not reported: status says so elsewhere.
func (s *stack) exposedListeners(processes []string) []listener {
	var exposed []listener
	for _, name := range processes {
		pid, ok := s.running(name)
		if !ok {
			continue
		}
		listeners, err := processListeners(name, pid)
		if err != nil {
			logf("%v", err)
			continue
		}
		for _, l := range listeners {
			if !l.addr.IsLoopback() {
				exposed = append(exposed, l)
			}
		}
	}
	return exposed
}

// listensOn reports whether process pid holds a listening TCP socket on port.
func listensOn(pid, port int) bool {
	listeners, err := processListeners("", pid)
	if err != nil {
		return false
	}
	for _, l := range listeners {
		if l.port == uint64(port) && (l.proto == "tcp" || l.proto == "tcp6") {
			return true
		}
	}
	return false
}
