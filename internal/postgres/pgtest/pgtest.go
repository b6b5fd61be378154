// Package pgtest runs a private PostgreSQL server for tests: initdb into a
// temporary directory, pg_ctl start on a free loopback port with its unix
// socket in that directory, and a fresh database for each test. It uses
// the server binaries of Debian's postgresql package (or any initdb and
// pg_ctl on PATH). PostgreSQL refuses to run as root; when the tests run
// as root, the server runs as the postgres user (through runuser), which
// Debian's postgresql package creates.
//
// A package whose tests need the server starts one in TestMain:
//
//	var pg *pgtest.Server
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }
//
// and each test asks it for a database with pg.Database(t). Without the
// binaries, Main leaves the server nil and Database skips the test,
// except under CI=true, where Main fails: CI must run these tests.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"optin/internal/postgres"
)

// ErrNoBinaries is returned by Start when initdb or pg_ctl is not found.
var ErrNoBinaries = errors.New("pgtest: PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's postgresql package")

// Server is a running private PostgreSQL server.
type Server struct {
	dir  string   // the temporary directory: data, log, socket
	bin  string   // the directory of initdb and pg_ctl
	as   []string // the command prefix that runs a command as the server's user
	port int
	dbs  atomic.Int64 // databases made so far, for their names
}

// StoreEnv is the environment variable that picks the store the
// end-to-end tests run on: "bolt" (or unset) or "postgres".
const StoreEnv = "OPTIN_TEST_STORE"

// Asked reports whether StoreEnv asks for PostgreSQL.
func Asked() bool { return os.Getenv(StoreEnv) == "postgres" }

// MainIfAsked is Main when StoreEnv asks for PostgreSQL, and runs the
// tests without a server (*srv nil) when it says bolt or nothing.
func MainIfAsked(m *testing.M, srv **Server) int {
	switch v := os.Getenv(StoreEnv); v {
	case "", "bolt":
		return m.Run()
	case "postgres":
		return Main(m, srv)
	default:
		fmt.Fprintf(os.Stderr, "pgtest: %s must be bolt or postgres, not %q\n", StoreEnv, v)
		return 2
	}
}

// Main starts a server, points *srv at it, runs the tests and stops the
// server; it returns the exit code for os.Exit. Without the server
// binaries it runs the tests with *srv nil (Database skips them), unless
// the environment says CI=true: then it fails without running them.
func Main(m *testing.M, srv **Server) int {
	s, err := Start()
	if errors.Is(err, ErrNoBinaries) && os.Getenv("CI") != "true" {
		fmt.Fprintln(os.Stderr, err.Error()+": the tests that need PostgreSQL are skipped")
		return m.Run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*srv = s
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Start initialises a database cluster in a new temporary directory and
// starts a server on it, listening on a free loopback port and on a unix
// socket in that directory. The server keeps fsync and
// synchronous_commit on, as in production.
func Start() (*Server, error) {
	bin, err := binaries()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin}
	if s.dir, err = os.MkdirTemp("", "optin-pg-"); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if err := s.setUser(); err != nil {
		os.RemoveAll(s.dir)
		return nil, err
	}
	data := filepath.Join(s.dir, "data")
	// --no-sync only spares initdb's own flush of the new files.
	if out, err := s.run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(s.dir)
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			os.RemoveAll(s.dir)
			return nil, err
		}
		out, err := s.start()
		if err == nil {
			if err := s.makeTemplate(); err != nil {
				s.Stop()
				return nil, err
			}
			return s, nil
		}
		if attempt == 2 { // the port may have been taken meanwhile; try others
			log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			os.RemoveAll(s.dir)
			return nil, fmt.Errorf("pgtest: pg_ctl start: %w\n%s\n%s", err, out, log)
		}
	}
}

// start starts the server on s.dir's cluster and s.port.
func (s *Server) start() ([]byte, error) {
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=on -c synchronous_commit=on -c max_connections=300",
		s.port, s.dir)
	return s.run("pg_ctl", "start", "-w", "-t", "60", "-D", filepath.Join(s.dir, "data"), "-l", filepath.Join(s.dir, "server.log"), "-o", opts)
}

// Crash stops the server the way a crash or a power cut does (pg_ctl's
// immediate mode: no checkpoint, connections cut); Recover starts it
// again on the same port, replaying its write-ahead log.
func (s *Server) Crash() error {
	out, err := s.run("pg_ctl", "stop", "-w", "-t", "60", "-m", "immediate", "-D", filepath.Join(s.dir, "data"))
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Recover starts a server stopped by Crash.
func (s *Server) Recover() error {
	if out, err := s.start(); err != nil {
		return fmt.Errorf("pgtest: pg_ctl start: %w\n%s", err, out)
	}
	return nil
}

// binaries returns the directory holding initdb and pg_ctl: the one on
// PATH, else the newest of Debian's /usr/lib/postgresql/N/bin.
func binaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	return "", ErrNoBinaries
}

// version is the major version N of a /usr/lib/postgresql/N/bin path.
func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// setUser arranges for the server to run as the postgres user when the
// tests run as root, and gives it the temporary directory.
func (s *Server) setUser() error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("pgtest: running as root, and PostgreSQL refuses to: the postgres user is needed (Debian's postgresql package creates it): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(s.dir, uid, gid); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	s.as = []string{"runuser", "-u", "postgres", "--"}
	return nil
}

// run runs one of the server binaries as the server's user.
func (s *Server) run(name string, args ...string) ([]byte, error) {
	argv := append(append(append([]string(nil), s.as...), filepath.Join(s.bin, name)), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = s.dir
	return cmd.CombinedOutput()
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Stop stops the server (fast shutdown) and removes its directory.
func (s *Server) Stop() error {
	out, err := s.run("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", filepath.Join(s.dir, "data"))
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %w\n%s", err, out)
	}
	return os.RemoveAll(s.dir)
}

// URL returns the URL of database name on the server, over TCP.
func (s *Server) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, name)
}

// template is the database Database copies: optin's schema, no data.
const template = "optin_template"

// makeTemplate creates the template database and brings its schema up to
// date, so that a test's database starts where a first start leaves one.
func (s *Server) makeTemplate() error {
	if err := s.admin("CREATE DATABASE " + template + " TEMPLATE template0"); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := postgres.Connect(ctx, s.URL(template))
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

// Database creates a new database with optin's schema for tb and returns
// its URL; it is dropped when tb ends (after the cleanups tb registers
// later, such as closing the store that uses it). On a nil Server (no
// binaries) it skips tb.
func (s *Server) Database(tb testing.TB) string {
	tb.Helper()
	return s.create(tb, template)
}

// EmptyDatabase is Database without optin's schema: an empty database, as
// an operator creates one for optin.
func (s *Server) EmptyDatabase(tb testing.TB) string {
	tb.Helper()
	return s.create(tb, "template0")
}

func (s *Server) create(tb testing.TB, from string) string {
	tb.Helper()
	if s == nil {
		tb.Skip("PostgreSQL server binaries not found (install Debian's postgresql package)")
	}
	name := "t" + strconv.FormatInt(s.dbs.Add(1), 10)
	if err := s.admin(fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, from)); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.admin(fmt.Sprintf("DROP DATABASE %s WITH (FORCE)", name)); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	return s.URL(name)
}

// Exec runs sql in database name as the server's superuser.
func (s *Server) Exec(name, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, s.URL(name))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, sql)
	return err
}

// admin runs a statement in the postgres database.
func (s *Server) admin(sql string) error {
	if err := s.Exec("postgres", sql); err != nil {
		return fmt.Errorf("%s: %w", strings.Fields(sql)[0], err)
	}
	return nil
}
