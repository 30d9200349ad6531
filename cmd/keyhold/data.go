package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/keyhold/keyhold/client"
)

// envEnvVar names the environment data commands use without --env.
const envEnvVar = "KEYHOLD_ENVIRONMENT"

func dataCommand() *command {
	return &command{
		name:    "data",
		summary: "read and write an environment's tables, rows and files (the data API)",
		long: "The data API is Dataverse-like, at /environments/{id}/api/data/v9.2/. Every row and file is\n" +
			"encrypted at rest under the environment's key; a locked environment refuses every command with\n" +
			"EnvironmentLocked and the reason. --env names the environment (env " + envEnvVar + ").",
		examples: []string{
			"keyhold data table create --env ENV --name accounts --column name:String:required --column logo:File",
			"keyhold data row create --env ENV --table accounts --data '{\"name\":\"Contoso\"}'",
			"keyhold data row list --env ENV --table accounts --top 50",
			"keyhold data file upload --env ENV --table accounts --id ID --column logo --file logo.png",
		},
		subs: []*command{dataTableCommand(), dataRowCommand(), dataFileCommand()},
	}
}

// envFlag registers --env.
func envFlag(fs *flag.FlagSet, v *string) {
	fs.StringVar(v, "env", "", "environment `ID` (env "+envEnvVar+")")
}

// envOf returns --env or the environment variable, or a usage error.
func (a *app) envOf(v string) (string, error) {
	if v == "" {
		v = a.getenv(envEnvVar)
	}
	if v == "" {
		return "", usagef("--env is required (or set %s)", envEnvVar)
	}
	return v, nil
}

func required(v, flagName string) error {
	if v == "" {
		return usagef("%s is required", flagName)
	}
	return nil
}

// --- tables ---

func dataTableCommand() *command {
	return &command{
		name:    "table",
		summary: "create, list and delete tables",
		subs:    []*command{dataTableCreate(), dataTableList(), dataTableShow(), dataTableDelete()},
	}
}

// columnFlag collects --column NAME:TYPE[:required].
type columnFlag []client.DataColumn

func (c *columnFlag) String() string { return "" }

func (c *columnFlag) Set(v string) error {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" || (len(parts) == 3 && parts[2] != "required") {
		return fmt.Errorf("a column looks like NAME:TYPE or NAME:TYPE:required, not %q", v)
	}
	*c = append(*c, client.DataColumn{Name: parts[0], Type: parts[1], Required: len(parts) == 3})
	return nil
}

func tableTable(ts []client.DataTable) table {
	t := table{header: []string{"NAME", "DISPLAY NAME", "PRIMARY ID", "COLUMNS"}}
	for _, x := range ts {
		var cols []string
		for _, c := range x.Columns {
			s := c.Name + ":" + c.Type
			if c.Required {
				s += ":required"
			}
			cols = append(cols, s)
		}
		t.rows = append(t.rows, []string{x.Name, x.DisplayName, x.PrimaryID, strings.Join(cols, ",")})
	}
	return t
}

func dataTableCreate() *command {
	var env, name, display string
	var cols columnFlag
	return tableVerb(&command{
		name:    "create",
		summary: "create a table",
		args:    "--env ID --name NAME [--column NAME:TYPE[:required]]... [flags]",
		long:    "Column types are String, Integer, Decimal, Boolean, DateTime and File. Every table also has\n<name>id (a GUID), createdon, modifiedon and versionnumber.",
		examples: []string{
			"keyhold data table create --env ENV --name accounts --column name:String:required --column revenue:Decimal --column logo:File",
		},
		flags: func(fs *flag.FlagSet) {
			envFlag(fs, &env)
			fs.StringVar(&name, "name", "", "table `NAME` (lower-case letters, digits, underscores)")
			fs.StringVar(&display, "display-name", "", "display `NAME`")
			fs.Var(&cols, "column", "a column `NAME:TYPE[:required]`; repeat for more")
		},
	}, &env, &name, nil, func(ctx context.Context, a *app, c *client.Client, env, name string) error {
		return printWith(a, one(tableTable))(c.CreateTable(ctx, env, client.DataTable{Name: name, DisplayName: display, Columns: orEmpty(cols)}))
	})
}

// tableVerb completes cmd, a table verb that takes --env (at *env) and the
// table's --name (at *name) or its one argument. Its run takes both, runs
// check (if not nil) before anything is sent, signs in and hands them to
// do. Errors are envOf's, nameArg's, check's, the sign-in's and do's.
func tableVerb(cmd *command, env, name *string, check func(a *app, name string) error,
	do func(ctx context.Context, a *app, c *client.Client, env, name string) error) *command {
	var e, n string
	cmd.run = signedIn(func(a *app, args []string) (err error) {
		if e, err = a.envOf(*env); err != nil {
			return err
		}
		n, err = nameArg(*name, args, "--name")
		return err
	}, func(a *app) error {
		if check == nil {
			return nil
		}
		return check(a, n)
	}, func(ctx context.Context, a *app, c *client.Client, _ settings) error {
		return do(ctx, a, c, e, n)
	})
	return cmd
}

func dataTableList() *command {
	var env string
	return &command{
		name:     "list",
		summary:  "list an environment's tables",
		args:     "--env ID [flags]",
		examples: []string{"keyhold data table list --env ENV", "keyhold data table list --env ENV -o json"},
		flags:    func(fs *flag.FlagSet) { envFlag(fs, &env) },
		run: signedIn(argless, func(a *app) (err error) {
			env, err = a.envOf(env)
			return err
		}, func(ctx context.Context, a *app, c *client.Client, _ settings) error {
			return printList(a, tableTable)(c.ListTables(ctx, env))
		}),
	}
}

func dataTableShow() *command {
	var env, name string
	return tableVerb(&command{
		name:     "show",
		summary:  "show a table's definition",
		args:     "--env ID --name NAME [flags]",
		examples: []string{"keyhold data table show --env ENV --name accounts"},
		flags: func(fs *flag.FlagSet) {
			envFlag(fs, &env)
			fs.StringVar(&name, "name", "", "table `NAME`")
		},
	}, &env, &name, nil, func(ctx context.Context, a *app, c *client.Client, env, name string) error {
		return printWith(a, one(tableTable))(c.GetTable(ctx, env, name))
	})
}

func dataTableDelete() *command {
	var env, name string
	var yes bool
	return tableVerb(&command{
		name:     "delete",
		summary:  "delete a table with all its rows and files",
		args:     "--env ID --name NAME [--yes] [flags]",
		long:     "Without --yes, delete asks for confirmation on the terminal, and refuses to run without one.",
		examples: []string{"keyhold data table delete --env ENV --name accounts --yes"},
		flags: func(fs *flag.FlagSet) {
			envFlag(fs, &env)
			fs.StringVar(&name, "name", "", "table `NAME`")
			yesFlag(fs, &yes)
		},
	}, &env, &name, confirmName(&yes, "data table delete", "Delete table %s with all its rows and files?", "table %s was not deleted"),
		func(ctx context.Context, a *app, c *client.Client, env, name string) error {
			if err := c.DeleteTable(ctx, env, name); err != nil {
				return err
			}
			a.say("Deleted table %s.", name)
			return nil
		})
}

// --- rows ---

func dataRowCommand() *command {
	return &command{
		name:    "row",
		summary: "create, read, update, delete and list rows",
		subs:    []*command{dataRowCreate(), dataRowGet(), dataRowUpdate(), dataRowDelete(), dataRowList()},
	}
}

// rowFlags are the flags most row verbs share.
type rowFlags struct{ env, table, id, data, ifMatch string }

func (f *rowFlags) register(fs *flag.FlagSet, id, data, ifMatch bool) {
	envFlag(fs, &f.env)
	fs.StringVar(&f.table, "table", "", "table `NAME`")
	if id {
		fs.StringVar(&f.id, "id", "", "the row's `ID` (a GUID)")
	}
	if data {
		fs.StringVar(&f.data, "data", "", "the row's columns as a JSON object, or @FILE to read it from FILE ('@-' for stdin)")
	}
	if ifMatch {
		fs.StringVar(&f.ifMatch, "if-match", "", "only if the row is still at this `ETAG` (such as W/\"3\"); * for any existing row")
	}
}

func (f *rowFlags) check(a *app, id bool) (string, error) {
	env, err := a.envOf(f.env)
	if err != nil {
		return "", err
	}
	if err := required(f.table, "--table"); err != nil {
		return "", err
	}
	if id {
		if err := required(f.id, "--id"); err != nil {
			return "", err
		}
	}
	return env, nil
}

// verb completes cmd, a row verb. Its run refuses arguments, checks the
// flags (--id too if id), reads --data if data, runs check (if not nil)
// before anything is sent, signs in and hands the environment and the row
// read to do. Errors are those steps'.
func (f *rowFlags) verb(cmd *command, id, data bool, check func(a *app) error,
	do func(ctx context.Context, a *app, c *client.Client, env string, row client.DataRow) error) *command {
	var env string
	var row client.DataRow
	cmd.run = signedIn(func(a *app, args []string) (err error) {
		if err := noArgs(args); err != nil {
			return err
		}
		if env, err = f.check(a, id); err != nil || !data {
			return err
		}
		row, err = a.rowData(f.data)
		return err
	}, check, func(ctx context.Context, a *app, c *client.Client, _ settings) error {
		return do(ctx, a, c, env, row)
	})
	return cmd
}

// rowOne is the table of one row of the table --table names.
func (f *rowFlags) rowOne(r client.DataRow) table { return rowTable(f.table, []client.DataRow{r}) }

// rowData reads --data: inline JSON, @FILE or @- for stdin.
func (a *app) rowData(v string) (client.DataRow, error) {
	if v == "" {
		return nil, usagef("--data is required: a JSON object of the row's columns")
	}
	b := []byte(v)
	if name, ok := strings.CutPrefix(v, "@"); ok {
		var err error
		if name == "-" {
			b, err = io.ReadAll(io.LimitReader(a.stdin, 4<<20))
		} else {
			b, err = os.ReadFile(name)
		}
		if err != nil {
			return nil, fmt.Errorf("cannot read the row from %s: %w", name, err)
		}
	}
	var row client.DataRow
	if err := json.Unmarshal(b, &row); err != nil || row == nil {
		return nil, usagef("--data must be a JSON object of the row's columns, such as '{\"name\":\"Contoso\"}'")
	}
	return row, nil
}

// rowTable shows rows: id, etag, then their columns in name order.
func rowTable(tableName string, rows []client.DataRow) table {
	idCol := strings.ToLower(tableName) + "id"
	skip := map[string]bool{idCol: true, "versionnumber": true, "createdon": true}
	seen := map[string]bool{}
	var cols []string
	for _, r := range rows {
		for k := range r {
			if !seen[k] && !skip[k] && !strings.HasPrefix(k, "@") {
				seen[k] = true
				cols = append(cols, k)
			}
		}
	}
	sort.Strings(cols)
	t := table{header: append([]string{"ID", "ETAG"}, upper(cols)...)}
	for _, r := range rows {
		line := []string{cell(r[idCol]), r.ETag()}
		for _, c := range cols {
			line = append(line, cell(r[c]))
		}
		t.rows = append(t.rows, line)
	}
	return t
}

func upper(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = strings.ToUpper(x)
	}
	return out
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func dataRowCreate() *command {
	var f rowFlags
	return f.verb(&command{
		name:    "create",
		summary: "create a row",
		args:    "--env ID --table NAME --data JSON|@FILE [flags]",
		long:    "The row's id is generated unless --data names it as \"<table>id\".",
		examples: []string{
			"keyhold data row create --env ENV --table accounts --data '{\"name\":\"Contoso\",\"revenue\":1.5}'",
			"keyhold data row create --env ENV --table accounts --data @row.json -o json",
		},
		flags: func(fs *flag.FlagSet) { f.register(fs, false, true, false) },
	}, false, true, nil, func(ctx context.Context, a *app, c *client.Client, env string, row client.DataRow) error {
		return printWith(a, f.rowOne)(c.CreateRow(ctx, env, f.table, row))
	})
}

func dataRowGet() *command {
	var f rowFlags
	return f.verb(&command{
		name:     "get",
		summary:  "show a row",
		args:     "--env ID --table NAME --id ID [flags]",
		examples: []string{"keyhold data row get --env ENV --table accounts --id ID -o json"},
		flags:    func(fs *flag.FlagSet) { f.register(fs, true, false, false) },
	}, true, false, nil, func(ctx context.Context, a *app, c *client.Client, env string, _ client.DataRow) error {
		return printWith(a, f.rowOne)(c.GetRow(ctx, env, f.table, f.id))
	})
}

func dataRowUpdate() *command {
	var f rowFlags
	return f.verb(&command{
		name:    "update",
		summary: "update a row's columns (null clears one)",
		args:    "--env ID --table NAME --id ID --data JSON|@FILE [--if-match ETAG] [flags]",
		long: "Only the columns --data names change. With --if-match the update fails (412) if the row changed\n" +
			"since that ETag; without it the last writer wins and a missing row is created.",
		examples: []string{
			"keyhold data row update --env ENV --table accounts --id ID --data '{\"revenue\":2.5}' --if-match 'W/\"1\"'",
		},
		flags: func(fs *flag.FlagSet) { f.register(fs, true, true, true) },
	}, true, true, nil, func(ctx context.Context, a *app, c *client.Client, env string, row client.DataRow) error {
		return printWith(a, f.rowOne)(c.UpdateRow(ctx, env, f.table, f.id, row, f.ifMatch))
	})
}

func dataRowDelete() *command {
	var f rowFlags
	var yes bool
	return f.verb(&command{
		name:     "delete",
		summary:  "delete a row and its files",
		args:     "--env ID --table NAME --id ID [--if-match ETAG] [--yes] [flags]",
		long:     "Without --yes, delete asks for confirmation on the terminal, and refuses to run without one.",
		examples: []string{"keyhold data row delete --env ENV --table accounts --id ID --yes"},
		flags: func(fs *flag.FlagSet) {
			f.register(fs, true, false, true)
			yesFlag(fs, &yes)
		},
	}, true, false, func(a *app) error {
		return a.mayDestroy(yes, "data row delete", fmt.Sprintf("Delete row %s of table %s with its files?", f.id, f.table),
			fmt.Sprintf("row %s was not deleted", f.id))
	}, func(ctx context.Context, a *app, c *client.Client, env string, _ client.DataRow) error {
		if err := c.DeleteRow(ctx, env, f.table, f.id, f.ifMatch); err != nil {
			return err
		}
		a.say("Deleted row %s of table %s.", f.id, f.table)
		return nil
	})
}

func dataRowList() *command {
	var f rowFlags
	var top, pageSize int
	return f.verb(&command{
		name:     "list",
		summary:  "list a table's rows in id order",
		args:     "--env ID --table NAME [--top N] [--page-size N] [flags]",
		examples: []string{"keyhold data row list --env ENV --table accounts --top 100", "keyhold data row list --env ENV --table accounts -o json"},
		flags: func(fs *flag.FlagSet) {
			f.register(fs, false, false, false)
			fs.IntVar(&top, "top", 0, "at most `N` rows (0: all)")
			fs.IntVar(&pageSize, "page-size", 0, "ask for pages of `N` rows (at most 5000; 0: the server's default)")
		},
	}, false, false, func(*app) error {
		if top < 0 || pageSize < 0 {
			return usagef("--top and --page-size take 0 or more")
		}
		return nil
	}, func(ctx context.Context, a *app, c *client.Client, env string, _ client.DataRow) error {
		return printList(a, func(rows []client.DataRow) table { return rowTable(f.table, rows) })(c.ListRows(ctx, env, f.table, top, pageSize))
	})
}

// --- files ---

func dataFileCommand() *command {
	return &command{
		name:    "file",
		summary: "upload and download the values of file columns",
		subs:    []*command{dataFileUpload(), dataFileDownload()},
	}
}

type fileFlags struct {
	rowFlags
	column, path, contentType string
}

func (f *fileFlags) register(fs *flag.FlagSet, upload bool) {
	f.rowFlags.register(fs, true, false, upload)
	fs.StringVar(&f.column, "column", "", "the file column's `NAME`")
	if upload {
		fs.StringVar(&f.path, "file", "", "the `FILE` to upload ('-' for stdin)")
		fs.StringVar(&f.contentType, "content-type", "", "the file's media `TYPE` (default application/octet-stream)")
	} else {
		fs.StringVar(&f.path, "out", "", "write the file to `FILE` ('-' for stdout)")
	}
}

// checkFile checks what every file verb needs: no stray arguments, the row,
// the column, and the file flag named pathFlag (--file or --out). It returns
// the environment id.
func (f *fileFlags) checkFile(a *app, args []string, pathFlag string) (string, error) {
	if err := noArgs(args); err != nil {
		return "", err
	}
	env, err := f.check(a, true)
	if err != nil {
		return "", err
	}
	if err := required(f.column, "--column"); err != nil {
		return "", err
	}
	return env, required(f.path, pathFlag)
}

func fileTable(f *client.DataFile) table {
	return table{header: []string{"FILE NAME", "CONTENT TYPE", "SIZE", "ETAG"},
		rows: [][]string{{f.FileName, f.ContentType, strconv.FormatInt(f.Size, 10), f.ETag}}}
}

func dataFileUpload() *command {
	var f fileFlags
	return &command{
		name:    "upload",
		summary: "upload a file column's value, streamed and encrypted in segments",
		args:    "--env ID --table NAME --id ID --column NAME --file FILE [flags]",
		examples: []string{
			"keyhold data file upload --env ENV --table accounts --id ID --column logo --file logo.png --content-type image/png",
		},
		flags: func(fs *flag.FlagSet) { f.register(fs, true) },
		run: func(ctx context.Context, a *app, args []string) error {
			env, err := f.checkFile(a, args, "--file")
			if err != nil {
				return err
			}
			var r io.Reader = a.stdin
			size, name := int64(-1), ""
			if f.path != "-" {
				fh, err := os.Open(f.path)
				if err != nil {
					return fmt.Errorf("cannot open %s: %w", f.path, err)
				}
				defer fh.Close()
				if st, err := fh.Stat(); err == nil && st.Mode().IsRegular() {
					size = st.Size()
				}
				r, name = fh, baseName(f.path)
			}
			c, _, err := a.connect()
			if err != nil {
				return err
			}
			return printWith(a, fileTable)(c.UploadFile(ctx, env, f.table, f.id, f.column, r, size, name, f.contentType, f.ifMatch))
		},
	}
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

func dataFileDownload() *command {
	var f fileFlags
	return &command{
		name:    "download",
		summary: "download a file column's value",
		args:    "--env ID --table NAME --id ID --column NAME --out FILE [flags]",
		long:    "The file is written to FILE as it arrives; if the download fails, FILE is removed.",
		examples: []string{
			"keyhold data file download --env ENV --table accounts --id ID --column logo --out logo.png",
			"keyhold data file download --env ENV --table accounts --id ID --column logo --out - > logo.png",
		},
		flags: func(fs *flag.FlagSet) { f.register(fs, false) },
		run: func(ctx context.Context, a *app, args []string) error {
			env, err := f.checkFile(a, args, "--out")
			if err != nil {
				return err
			}
			c, _, err := a.connect()
			if err != nil {
				return err
			}
			if f.path == "-" {
				_, err := c.DownloadFile(ctx, env, f.table, f.id, f.column, a.stdout)
				return err
			}
			fh, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return fmt.Errorf("cannot create %s: %w", f.path, err)
			}
			out, err := c.DownloadFile(ctx, env, f.table, f.id, f.column, fh)
			if cerr := fh.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(f.path)
				return err
			}
			if a.g.output == "json" {
				return writeJSON(a.stdout, out)
			}
			a.say("Wrote %d bytes to %s.", out.Size, f.path)
			return nil
		},
	}
}
