package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// version prints what this binary was built from.
func version(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := parseFlags(fs, "optin version", args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	bi, _ := debug.ReadBuildInfo() // nil without build information
	fmt.Fprint(stdout, versionText(bi))
	return nil
}

// versionText describes a build: the module version, the VCS commit (and
// whether the tree had changes) and its time, and the Go version. What the
// build did not record, such as the commit of a -buildvcs=false build, is
// "unknown"; bi is nil when the binary carries no build information.
func versionText(bi *debug.BuildInfo) string {
	mod, goVersion := "", runtime.Version()
	settings := map[string]string{}
	if bi != nil {
		mod, goVersion = bi.Main.Version, bi.GoVersion
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
	}
	or := func(v string) string {
		if v == "" {
			return "unknown"
		}
		return v
	}
	commit := or(settings["vcs.revision"])
	if settings["vcs.modified"] == "true" {
		commit += " (modified)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "optin %s\n", or(mod))
	fmt.Fprintf(&b, "commit      %s\n", commit)
	fmt.Fprintf(&b, "commit time %s\n", or(settings["vcs.time"]))
	fmt.Fprintf(&b, "go          %s\n", or(goVersion))
	return b.String()
}
