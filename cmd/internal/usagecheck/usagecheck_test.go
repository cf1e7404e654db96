package usagecheck

import (
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestMismatches(t *testing.T) {
	t.Parallel()
	root := &cobra.Command{Use: "tool"}
	root.PersistentFlags().String("api", "", "")
	good := &cobra.Command{Use: "good --dir DIR [--api URL] [-f FILE | --force]", Run: func(*cobra.Command, []string) {}}
	good.Flags().String("dir", "", "where (required)")
	good.Flags().StringP("file", "f", "", "")
	good.Flags().Bool("force", false, "")
	bad := &cobra.Command{Use: "bad [--tls-cert F] [-x]", Run: func(*cobra.Command, []string) {}}
	bad.Flags().String("data-dir", "", "where (required)")
	root.AddCommand(good, bad)
	got := Mismatches(root)
	want := []string{
		`tool bad: usage "bad [--tls-cert F] [-x]" names --tls-cert, which is not a flag of this command`,
		`tool bad: usage "bad [--tls-cert F] [-x]" names -x, which is not a flag of this command`,
		`tool bad: --data-dir is required but usage "bad [--tls-cert F] [-x]" leaves it out`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
