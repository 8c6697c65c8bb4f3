// The Go contender of the serving benchmark (benches/serving/run builds it with
// `go build`, standard library only, and runs it with GOMAXPROCS=1; see README.md).
//
// net/http over crypto/tls: HTTP/2 or HTTP/1.1 by ALPN (ServeTLS configures h2 itself),
// TLS 1.3 only. Go 1.19 cannot restrict TLS 1.3 cipher suites (tls.Config.CipherSuites
// applies to TLS 1.2 and below); it prefers AES-128-GCM on hardware with AES
// instructions, and the benchmark's clients offer only that suite. Session tickets are on
// (Go's default). GET / answers the -small file, GET /64k the -large one.
package main

import (
	"crypto/tls"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "address to listen on")
	cert := flag.String("cert", "", "certificate chain (PEM)")
	key := flag.String("key", "", "private key (PEM)")
	small := flag.String("small", "", "body of GET /")
	large := flag.String("large", "", "body of GET /64k")
	flag.Parse()

	mux := http.NewServeMux()
	mux.HandleFunc("/", body(mustRead(*small), "/"))
	mux.HandleFunc("/64k", body(mustRead(*large), "/64k"))
	srv := &http.Server{
		Handler:   mux,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS13},
		// Long enough for the idle-connection row; nginx's keepalive_timeout matches.
		IdleTimeout: 10 * time.Minute,
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("go: listening on %s", ln.Addr())
	log.Fatal(srv.ServeTLS(ln, *cert, *key))
}

func mustRead(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	return data
}

// body answers the exact path with data; the mux's "/" pattern matches every path.
func body(data []byte, path string) http.HandlerFunc {
	length := strconv.Itoa(len(data))
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		// Set explicitly so that Go neither sniffs the type nor chunks the body.
		h := w.Header()
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Length", length)
		w.Write(data)
	}
}
