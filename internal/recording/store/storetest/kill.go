package storetest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"github.com/framecast/framecast/internal/recording/store"
)

// The kill -9 check of an implementation: a child process (the test
// binary, running one test) appends records to a journal as fast as it
// can, reporting each one on stdout; the parent kills it with SIGKILL and
// checks that every record it reported is in the journal, whole.

// KillJournal is the journal the appender writes.
const KillJournal = "seg/cam/h264/1"

// AppendForever is the child's body: it appends Record(0), Record(1), ...
// to KillJournal of st, printing each one's number once it is appended,
// until it is killed.
func AppendForever(t testing.TB, st store.Store) {
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		if err := st.Append(context.Background(), KillJournal, Record(i)); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(out, i)
		out.Flush()
	}
}

// KillAppender runs the test named run of this test binary as the child,
// with env added to its environment, kills it with SIGKILL once it
// reported after appends, and then checks, with read (the journal as the
// store has it), that every record it reported is there, whole.
func KillAppender(t testing.TB, run string, env []string, after int, read func() ([]byte, error)) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	last := -1
	for sc.Scan() {
		if last, _ = strconv.Atoi(sc.Text()); last >= after {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	for sc.Scan() {
		last, _ = strconv.Atoi(sc.Text())
	}
	cmd.Wait()
	if last < 0 {
		t.Fatal("the appender reported nothing")
	}
	b, err := read()
	if err != nil {
		t.Fatal(err)
	}
	n := CheckRecords(t, b)
	if n < last+1 {
		t.Fatalf("%d records in the journal, the killed process had appended %d", n, last+1)
	}
	t.Logf("killed after %d reported appends; %d records in the journal", last+1, n)
}
