module github.com/svinit/svinit/k8stest

go 1.26.0

require (
	github.com/svinit/svinit v0.0.0
	golang.org/x/sys v0.49.0
)

require (
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/rs/zerolog v1.35.1 // indirect
)

replace github.com/svinit/svinit => ../
