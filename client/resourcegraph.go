package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// APIVersionResourceGraph is the api-version of Resource Graph queries.
const APIVersionResourceGraph = "2021-03-01"

// resourceGraphPage is the most rows Resource Graph returns in one page.
const resourceGraphPage = 1000

// GraphQueryOptions narrow a Resource Graph query.
type GraphQueryOptions struct {
	// Subscriptions limits the query to these subscriptions; empty means
	// every subscription of the tenant the caller can see.
	Subscriptions []string
	// First is the most rows to return; 0 means all of them.
	First int
}

// GraphColumn is a column of a Resource Graph result.
type GraphColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// GraphResult is the answer to a Resource Graph query: its columns in
// order, and its rows as values in that order.
type GraphResult struct {
	// TotalRecords counts every row the query matched, also those beyond
	// First.
	TotalRecords int64
	Columns      []GraphColumn
	Rows         [][]any
}

// Objects returns the rows as objects keyed by column name, which marshal
// to JSON with their keys in column order.
func (r *GraphResult) Objects() []GraphObject {
	out := make([]GraphObject, len(r.Rows))
	for i, row := range r.Rows {
		out[i] = GraphObject{Columns: r.Columns, Values: row}
	}
	return out
}

// GraphObject is one row of a GraphResult as an object.
type GraphObject struct {
	Columns []GraphColumn
	Values  []any
}

// Get returns the value of the column name, or nil.
func (o GraphObject) Get(name string) any {
	for i, c := range o.Columns {
		if c.Name == name && i < len(o.Values) {
			return o.Values[i]
		}
	}
	return nil
}

// MarshalJSON writes the row as an object with its keys in column order.
func (o GraphObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, c := range o.Columns {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(c.Name)
		if err != nil {
			return nil, err
		}
		var v any
		if i < len(o.Values) {
			v = o.Values[i]
		}
		vb, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// QueryResources runs a Resource Graph query (POST
// /providers/Microsoft.ResourceGraph/resources) and follows its skip tokens
// until it has opts.First rows or there are no more. It asks for the table
// format, so that the columns keep the query's order. A query the server
// cannot parse comes back as an *Error whose message names the line and
// column.
func (c *Client) QueryResources(ctx context.Context, query string, opts GraphQueryOptions) (*GraphResult, error) {
	if opts.First < 0 {
		return nil, errors.New("client: the number of rows to return cannot be negative")
	}
	type options struct {
		Top          int    `json:"$top"`
		SkipToken    string `json:"$skipToken,omitempty"`
		ResultFormat string `json:"resultFormat"`
	}
	type request struct {
		Subscriptions []string `json:"subscriptions,omitempty"`
		Query         string   `json:"query"`
		Options       options  `json:"options"`
	}
	type response struct {
		TotalRecords int64  `json:"totalRecords"`
		SkipToken    string `json:"$skipToken"`
		Data         struct {
			Columns []GraphColumn `json:"columns"`
			Rows    [][]any       `json:"rows"`
		} `json:"data"`
	}
	out := &GraphResult{}
	req := request{Subscriptions: opts.Subscriptions, Query: query, Options: options{ResultFormat: "table"}}
	for pages := 0; ; pages++ {
		if pages == 10000 {
			return nil, errors.New("client: the server returned more than 10000 pages")
		}
		req.Options.Top = resourceGraphPage
		if opts.First > 0 {
			req.Options.Top = min(opts.First-len(out.Rows), resourceGraphPage)
		}
		var resp response
		if _, err := c.Do(ctx, http.MethodPost, AudienceARM, "providers/Microsoft.ResourceGraph/resources?api-version="+APIVersionResourceGraph, req, &resp); err != nil {
			return nil, err
		}
		if pages == 0 {
			out.TotalRecords, out.Columns = resp.TotalRecords, resp.Data.Columns
		}
		for _, row := range resp.Data.Rows {
			if len(row) != len(out.Columns) {
				return nil, fmt.Errorf("client: the server answered a row of %d values for %d columns", len(row), len(out.Columns))
			}
		}
		out.Rows = append(out.Rows, resp.Data.Rows...)
		if resp.SkipToken == "" || opts.First > 0 && len(out.Rows) >= opts.First {
			break
		}
		req.Options.SkipToken = resp.SkipToken
	}
	if opts.First > 0 && len(out.Rows) > opts.First {
		out.Rows = out.Rows[:opts.First]
	}
	return out, nil
}
