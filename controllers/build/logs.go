package build

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Full build logs stay on the builder node, one file per build and
// generation; status keeps only the tail. The node API streams them to
// `uc logs build`.

// endMarker is the last line of a finished build's log; a follower stops
// there.
const endMarker = "#> build finished: "

// logPath is where a build generation's log lives under dir.
func logPath(dir, build string, generation int64) string {
	return filepath.Join(dir, strings.ReplaceAll(build, "/", "_"), strconv.FormatInt(generation, 10)+".log")
}

// openLog creates (or truncates: a retry starts over) a generation's log.
func openLog(dir, build string, generation int64) (*os.File, error) {
	if dir == "" {
		return nil, nil
	}
	p := logPath(dir, build, generation)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	return os.Create(p)
}

// closeLog writes the end marker so that followers stop, then closes.
func closeLog(f *os.File, outcome string) {
	if f == nil {
		return
	}
	fmt.Fprintf(f, "%s%s\n", endMarker, outcome)
	f.Close()
}

// LogHandler serves GET /v1/logs/builds?name=P/S&generation=N[&follow=1]
// from this node's log directory.
func LogHandler(dir string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		gen, err := strconv.ParseInt(q.Get("generation"), 10, 64)
		if q.Get("name") == "" || err != nil {
			http.Error(w, "want ?name=PROJECT/SERVICE&generation=N", http.StatusBadRequest)
			return
		}
		f, err := os.Open(logPath(dir, q.Get("name"), gen))
		if errors.Is(err, os.ErrNotExist) {
			http.Error(w, "no log of "+q.Get("name")+" generation "+q.Get("generation")+" on this node", http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		streamLog(w, r, f, q.Get("follow") == "1" || q.Get("follow") == "true")
	})
}

// streamLog copies the log, and with follow keeps copying what is
// appended until the end marker or until the client leaves.
func streamLog(w http.ResponseWriter, r *http.Request, f io.Reader, follow bool) {
	rd := bufio.NewReader(f)
	flusher, _ := w.(http.Flusher)
	for {
		line, err := rd.ReadString('\n')
		if line != "" && err == nil {
			io.WriteString(w, line)
			if strings.HasPrefix(line, endMarker) {
				return
			}
			continue
		}
		if !follow || (err != nil && err != io.EOF) {
			io.WriteString(w, line)
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		// A partial line stays buffered; wait for the writer to go on.
		rd = bufio.NewReader(io.MultiReader(strings.NewReader(line), f))
		select {
		case <-r.Context().Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}
