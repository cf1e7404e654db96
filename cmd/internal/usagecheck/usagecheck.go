// Package usagecheck checks that a CLI's usage lines tell the truth about
// its flags, for the tests of uc and ucd.
package usagecheck

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagToken is a flag named in a usage line: --long or -x, at the start of a
// word or after '[', '(' or '|'.
var flagToken = regexp.MustCompile(`(?:^|[\s\[(|])(--[a-z0-9][a-z0-9-]*|-[a-zA-Z])\b`)

// Mismatches walks root and every command below it and lists each flag a
// usage line names that the command does not have, and each flag marked
// "(required)" in its help that the usage line leaves out.
func Mismatches(root *cobra.Command) []string {
	var out []string
	walk(root, func(cmd *cobra.Command) {
		named := map[string]bool{}
		for _, m := range flagToken.FindAllStringSubmatch(cmd.Use, -1) {
			tok := m[1]
			f := lookup(cmd, tok)
			if f == nil {
				out = append(out, fmt.Sprintf("%s: usage %q names %s, which is not a flag of this command", cmd.CommandPath(), cmd.Use, tok))
				continue
			}
			named[f.Name] = true
		}
		cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if strings.Contains(f.Usage, "(required)") && !named[f.Name] {
				out = append(out, fmt.Sprintf("%s: --%s is required but usage %q leaves it out", cmd.CommandPath(), f.Name, cmd.Use))
			}
		})
	})
	return out
}

func walk(cmd *cobra.Command, visit func(*cobra.Command)) {
	visit(cmd)
	for _, c := range cmd.Commands() {
		walk(c, visit)
	}
}

// lookup finds a flag by --name or -x among the command's own and inherited
// flags.
func lookup(cmd *cobra.Command, tok string) *pflag.Flag {
	if name, ok := strings.CutPrefix(tok, "--"); ok {
		return cmd.Flag(name)
	}
	short := strings.TrimPrefix(tok, "-")
	if f := cmd.Flags().ShorthandLookup(short); f != nil {
		return f
	}
	return cmd.InheritedFlags().ShorthandLookup(short)
}
