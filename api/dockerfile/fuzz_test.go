package dockerfile

import "testing"

// FuzzImages: uc apply reads every Dockerfile of a project; whatever it
// holds must give images or an error, never a panic.
func FuzzImages(f *testing.F) {
	for _, seed := range []string{
		"FROM busybox\n",
		"ARG R=x\nFROM ${R}/base:1 AS b\nARG R\nCOPY --from=${R}/jq /a /b\nFROM b\n",
		"FROM scratch\nCOPY --from=0 / /\n",
		"# escape=`\nFROM a`\n  b\n",
		"FROM ${X:-y}\nRUN <<EOF\nx\nEOF\n",
	} {
		f.Add(seed, "v")
	}
	f.Fuzz(func(t *testing.T, df, arg string) {
		_, _ = Images([]byte(df), map[string]string{"R": arg})
		_, _ = ContextKey(df)
	})
}
