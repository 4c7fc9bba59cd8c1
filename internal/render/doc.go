// Package render writes config files from templates before the child starts: the replica
// index (and a few other values) rendered in, every file checked first, each written atomically.
//
// # Choosing the files
//
// Each --template SRC:DST names one template file, or a directory of them. In directory mode
// every regular file under SRC is rendered to the same relative path under DST. A Kubernetes
// ConfigMap or Secret volume works as SRC: its visible files are symlinks into a hidden,
// timestamped directory (key -> ..data/key, ..data -> ..2024_01_01_12_00_00.123456789), so
// entries whose names begin with ".." are skipped and symlinks are followed. Other files that
// are neither regular nor directories (sockets, FIFOs, devices) are skipped. Relative paths in
// a spec are made absolute when it is parsed, because svinit later changes to "/".
//
// # Two syntaxes
//
// Every file has each "{id}" replaced by the replica index, byte for byte as
//
//	sed "s/{id}/$AGDB_REPLICA_INDEX/g"
//
// does, so an existing ConfigMap renders unchanged; a file without "{id}" is copied as it is.
// Unlike the sed, a file that contains "{id}" when no index is known is an error rather than
// an empty replacement.
//
// A file whose name ends in ".tmpl" is in addition a Go text/template (the "{id}" replacement
// happens first, so "{id}" still works in it; write {{ "{" }}id} for a literal "{id}"). The
// suffix is the opt-in because Go templates and plain configs both use braces: a Helm-style
// "{{" in an ordinary file stays untouched. In directory mode the ".tmpl" suffix is dropped
// from the DST name (a.yaml.tmpl -> a.yaml); for a single file, DST is the name given. A
// template sees:
//
//	{{ .Index }}          the replica index (int): --replica-index, SVINIT_REPLICA_INDEX,
//	                      or the trailing ordinal of the hostname (agdb-2 -> 2)
//	{{ .Hostname }}       the host name (string)
//	{{ .Replicas }}       the replica count (int): --replicas or SVINIT_REPLICAS
//	{{ env "NAME" }}      the variable NAME; an error when it is unset (set but empty is "")
//	{{ envOr "NAME" "x" }} the variable NAME, or "x" when it is unset
//	{{ seq N }}           the list 0, 1, ..., N-1 (at most 65536 items), to range over ordinals
//	{{ add A B }}         A + B for whole numbers, e.g. a port per replica: {{ add 7000 .Index }}
//	{{ join SEP LIST }}   the items of LIST joined by SEP: {{ seq .Replicas | join "," }}
//
// and the text/template built-ins (if, range, eq, printf, ...). A value that is not known
// is an error, never an empty string: a misspelt {{ .Indx }}, {{ .Index }} with no index,
// {{ .Replicas }} with no count, {{ env "X" }} with X unset. The agdb cluster list for any
// replica count:
//
//	cluster: [{{ range $i := seq .Replicas }}{{ if $i }}, {{ end }}http://agdb-{{ $i }}.agdb.default.svc.cluster.local:3000{{ end }}]
//
// # Checking and writing
//
// Prepare reads and renders every file in memory and reports every problem of every
// template together, each as FILE:LINE: PROBLEM, before anything is written, so a bad second
// template never leaves the first one rendered. Plan.Write then writes every file to a
// temporary file in its DST's directory and fsyncs it; only when all are written does it
// rename each over its DST (keeping the old file until all are in place) and fsync the
// directories. A failure at any file leaves every DST as it was, and a reader sees the old
// file or the new one, never a partial or empty one, also when svinit is killed. DST directories are created as needed (mode 0755). A DST that is a
// symlink is replaced, not followed. The mode is SRC's (its permission bits) unless
// --template-mode sets one; a replaced DST keeps its owner when svinit may set it.
//
// Templates are configuration the operator wrote, not untrusted input; the limits catch
// mistakes such as an unbounded range within a second: at most 1048576 range iterations,
// template calls and seq items, and 64 MiB of output, per file.
package render
