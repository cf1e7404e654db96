package statetest

import (
	"time"

	"github.com/ucplane/uc/state/corrosion"
)

// These write image spec rows straight to the table, with none of
// ApplyProject's reads and checks, for the benchmark that times one write
// alone against the moment a controller sees it.

// InsertImageSpec is a new image spec row at generation 1.
func InsertImageSpec(name, project, spec string) corrosion.Statement {
	return corrosion.Stmt(`INSERT INTO image_specs (name, project, uid, generation, spec, updated_at) VALUES (?, ?, ?, 1, ?, ?)`,
		name, project, "uid-"+name, spec, time.Now().UnixMilli())
}

// BumpImageSpec replaces a spec row's body and moves its generation.
func BumpImageSpec(name, spec string) corrosion.Statement {
	return corrosion.Stmt(`UPDATE image_specs SET spec = ?, generation = generation + 1, updated_at = ? WHERE name = ?`,
		spec, time.Now().UnixMilli(), name)
}

// ImageGenerations is a query of every image spec's name and generation,
// for a subscription that sees each write as it is made.
var ImageGenerations = corrosion.Stmt("SELECT name, generation FROM image_specs")
