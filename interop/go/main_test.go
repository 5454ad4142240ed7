package interop

// Process-wide harness: seata-go keeps its configuration, connection and
// resource managers in package-level singletons that can be initialised only
// once per process, so TestMain starts (or locates) one TC, writes a client
// configuration that points at it and initialises the client once. Tests that
// run after a failed setup fail with the recorded reason.

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seata/seata-go/pkg/client"
)

const (
	applicationID  = "ferrata-interop-go"
	txServiceGroup = "ferrata_interop_group"
	clusterName    = "ferrata"

	serverStartTimeout    = 20 * time.Second
	serverShutdownTimeout = 10 * time.Second
	// Every client interaction is wrapped in this bound: seata-go's own RPC
	// timeout is 20 s per request and it retries commits/rollbacks.
	clientCallTimeout = 15 * time.Second
	// Bound for phase-two delivery to a TCC participant.
	phaseTwoTimeout = 10 * time.Second
)

// harness holds what TestMain set up; read-only once tests run.
var harness struct {
	setupErr error // non-nil: every test fails with it

	tcAddr  string // host:port the client talks to
	tcHost  string
	tcPort  string
	managed bool // true when this process started the server

	cmd       *exec.Cmd
	exited    chan struct{} // closed when the managed server process ended
	exitErr   error         // valid after exited is closed
	logPath   string        // server stderr/stdout
	workDir   string        // temporary directory (data dir, config, log)
	configYML string

	participants map[string]*participant // TCC participants by action name
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := run(m)
	os.Exit(code)
}

func run(m *testing.M) int {
	defer cleanup()

	if err := setup(); err != nil {
		harness.setupErr = err
		fmt.Fprintf(os.Stderr, "interop setup failed: %v\n", err)
	}
	code := m.Run()

	if harness.managed {
		if err := stopServer(); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
			code = 1
		}
		if code != 0 {
			dumpServerLog(200)
		}
	}
	return code
}

// requireHarness is the first call of every test.
func requireHarness(t *testing.T) {
	t.Helper()
	if harness.setupErr != nil {
		t.Fatalf("interop harness not available: %v", harness.setupErr)
	}
	if harness.managed {
		select {
		case <-harness.exited:
			t.Fatalf("ferrata-server exited during the test run (%v); log: %s", harness.exitErr, harness.logPath)
		default:
		}
	}
}

func setup() error {
	dir, err := os.MkdirTemp("", "ferrata-interop-go-")
	if err != nil {
		return err
	}
	harness.workDir = dir

	bin, ext := os.Getenv("FERRATA_BIN"), os.Getenv("TC_ADDR")
	switch {
	case bin != "":
		if err := startServer(bin); err != nil {
			return err
		}
	case ext != "":
		host, port, err := net.SplitHostPort(ext)
		if err != nil {
			return fmt.Errorf("TC_ADDR=%q is not host:port: %v", ext, err)
		}
		harness.tcAddr, harness.tcHost, harness.tcPort = ext, host, port
		if err := waitForPort(ext, serverStartTimeout, nil); err != nil {
			return fmt.Errorf("external TC at TC_ADDR=%s: %v", ext, err)
		}
	default:
		return errors.New("no TC to test against: set FERRATA_BIN=/path/to/ferrata-server " +
			"(the test starts it on a free 127.0.0.1 port) or TC_ADDR=host:port of a running TC")
	}

	if err := initClient(); err != nil {
		return err
	}
	return nil
}

func startServer(bin string) error {
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("no free loopback port: %v", err)
	}
	harness.tcHost, harness.tcPort = "127.0.0.1", fmt.Sprint(port)
	harness.tcAddr = net.JoinHostPort(harness.tcHost, harness.tcPort)

	dataDir := filepath.Join(harness.workDir, "data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	harness.logPath = os.Getenv("FERRATA_SERVER_LOG")
	if harness.logPath == "" {
		harness.logPath = filepath.Join(harness.workDir, "ferrata-server.log")
	}
	logFile, err := os.Create(harness.logPath)
	if err != nil {
		return err
	}

	cmd := exec.Command(bin, "--listen", harness.tcAddr, "--data-dir", dataDir)
	// Any free port for the admin listener, unless the caller chose one: the default (7091)
	// may be taken by another server on this machine.
	if os.Getenv("FERRATA_ADMIN__LISTEN") == "" {
		cmd.Env = append(os.Environ(), "FERRATA_ADMIN__LISTEN=127.0.0.1:0")
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Keep the server out of the terminal's process group signals (^C goes to
	// the test, which then shuts the server down with SIGTERM).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %v", bin, err)
	}
	harness.cmd = cmd
	harness.managed = true
	harness.exited = make(chan struct{})
	go func() {
		harness.exitErr = cmd.Wait()
		logFile.Close()
		close(harness.exited)
	}()
	fmt.Fprintf(os.Stderr, "interop: started %s --listen %s --data-dir %s (pid %d, log %s)\n",
		bin, harness.tcAddr, dataDir, cmd.Process.Pid, harness.logPath)

	if err := waitForPort(harness.tcAddr, serverStartTimeout, harness.exited); err != nil {
		return fmt.Errorf("ferrata-server did not come up: %v", err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitForPort polls until addr accepts a TCP connection, the deadline passes
// or died is closed.
func waitForPort(addr string, limit time.Duration, died <-chan struct{}) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if died != nil {
			select {
			case <-died:
				return fmt.Errorf("process exited before listening on %s: %v", addr, harness.exitErr)
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not accepting connections after %v: %v", addr, limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clientConfig renders the seata-go configuration for the TC address.
func clientConfig(addr string) string {
	return fmt.Sprintf(`seata:
  enabled: true
  application-id: %[1]s
  tx-service-group: %[2]s
  client:
    tm:
      # one attempt only: a retry would hide a failed first answer from the TC
      commit-retry-count: 1
      rollback-retry-count: 1
      default-global-transaction-timeout: 30s
  service:
    vgroup-mapping:
      %[2]s: %[3]s
    grouplist:
      %[3]s: "%[4]s"
  getty:
    reconnect-interval: 0
    connection-num: 1
    # With one TC every balancer picks the same connection. Pinned because
    # v1.2.0's default "XID" balancer is broken: it is handed the RpcMessage
    # envelope, finds no Xid field and falls back to random, and its ip:port
    # branch would dereference a nil session if it were ever reached.
    load-balance-type: RandomLoadBalance
    session:
      compress-encoding: false
      tcp-no-delay: true
      tcp-keep-alive: true
      keep-alive-period: 120s
      tcp-r-buf-size: 262144
      tcp-w-buf-size: 65536
      tcp-read-timeout: 1s
      tcp-write-timeout: 5s
      wait-timeout: 1s
      max-msg-len: 102400
      session-name: %[1]s
      cron-period: 1s
  transport:
    type: TCP
    heartbeat: true
    serialization: seata
    compressor: none
`, applicationID, txServiceGroup, clusterName, addr)
}

// initClient writes the configuration and initialises seata-go once, then
// registers the TCC participants (each registration is a synchronous
// RegisterRMRequest, which also proves the connection works).
func initClient() error {
	harness.configYML = filepath.Join(harness.workDir, "seatago.yml")
	if err := os.WriteFile(harness.configYML, []byte(clientConfig(harness.tcAddr)), 0o644); err != nil {
		return err
	}
	if err := bounded(clientCallTimeout, func() error {
		client.InitPath(harness.configYML)
		return nil
	}); err != nil {
		return fmt.Errorf("seata-go client.InitPath: %v", err)
	}

	harness.participants = map[string]*participant{}
	for _, name := range []string{actionA, actionB} {
		p := &participant{name: name}
		if err := bounded(25*time.Second, func() error {
			return p.register()
		}); err != nil {
			return fmt.Errorf("register TCC resource %q (RegisterRMRequest): %v", name, err)
		}
		harness.participants[name] = p
	}
	return nil
}

// bounded runs f in a goroutine and gives up after limit. A panic inside f
// (seata-go type-asserts the TC's answers) is turned into an error. After a
// timeout f keeps running in the background; the process ends soon anyway.
func bounded(limit time.Duration, f func() error) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("panic in seata-go client: %v", r)
			}
		}()
		done <- f()
	}()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		return timeoutError{limit}
	}
}

type timeoutError struct{ limit time.Duration }

func (e timeoutError) Error() string {
	return fmt.Sprintf("no result within %v (client blocked waiting for the TC)", e.limit)
}

func isTimeout(err error) bool {
	var te timeoutError
	return errors.As(err, &te)
}

// stopServer sends SIGTERM and waits for a graceful exit.
func stopServer() error {
	if harness.cmd == nil || harness.cmd.Process == nil {
		return nil
	}
	select {
	case <-harness.exited:
		return fmt.Errorf("ferrata-server had already exited before shutdown: %v", harness.exitErr)
	default:
	}
	if err := harness.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM ferrata-server: %v", err)
	}
	select {
	case <-harness.exited:
		if harness.exitErr != nil {
			return fmt.Errorf("ferrata-server exited with %v after SIGTERM (want a clean exit)", harness.exitErr)
		}
		return nil
	case <-time.After(serverShutdownTimeout):
		_ = harness.cmd.Process.Kill()
		<-harness.exited
		return fmt.Errorf("ferrata-server did not exit within %v of SIGTERM; killed", serverShutdownTimeout)
	}
}

func dumpServerLog(lines int) {
	if harness.logPath == "" {
		return
	}
	f, err := os.Open(harness.logPath)
	if err != nil {
		return
	}
	defer f.Close()
	var ring []string
	sc := bufio.NewScanner(io.LimitReader(f, 64<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		ring = append(ring, sc.Text())
		if len(ring) > lines {
			ring = ring[1:]
		}
	}
	fmt.Fprintf(os.Stderr, "----- last %d lines of ferrata-server log (%s) -----\n%s\n----- end of server log -----\n",
		len(ring), harness.logPath, strings.Join(ring, "\n"))
}

var cleanupOnce sync.Once

func cleanup() {
	cleanupOnce.Do(func() {
		if harness.cmd != nil && harness.cmd.Process != nil {
			select {
			case <-harness.exited:
			default:
				_ = harness.cmd.Process.Kill()
				<-harness.exited
			}
		}
		if harness.workDir != "" && os.Getenv("FERRATA_KEEP_WORKDIR") == "" {
			os.RemoveAll(harness.workDir)
		}
	})
}
