package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// AudienceData is the audience of the environment data API: the platform
// admin audience, as Dataverse takes the environment's own.
const AudienceData = AudienceBAP

// DataColumn is a column of an environment table. Type is one of String,
// Integer, Decimal, Boolean, DateTime and File.
type DataColumn struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	DisplayName string `json:"displayName,omitempty"`
	Required    bool   `json:"required,omitempty"`
}

// DataTable is an environment table's definition.
type DataTable struct {
	Name        string       `json:"name"`
	DisplayName string       `json:"displayName,omitempty"`
	PrimaryID   string       `json:"primaryIdAttribute,omitempty"`
	Columns     []DataColumn `json:"columns"`
	CreatedOn   time.Time    `json:"createdOn,omitzero"`
}

// DataRow is a row as the data API shows it: its columns, "<table>id",
// "@odata.etag", "versionnumber", "createdon" and "modifiedon".
type DataRow map[string]any

// ETag returns the row's @odata.etag, for If-Match.
func (r DataRow) ETag() string { s, _ := r["@odata.etag"].(string); return s }

// DataFile describes a file column's value.
type DataFile struct {
	FileName    string    `json:"fileName"`
	ContentType string    `json:"contentType,omitempty"`
	Size        int64     `json:"fileSizeInBytes"`
	ETag        string    `json:"@odata.etag"`
	Version     int64     `json:"versionnumber"`
	ModifiedOn  time.Time `json:"modifiedon,omitzero"`
}

// DataPath returns the base path of an environment's data API.
func DataPath(envID string) string {
	return "environments/" + url.PathEscape(envID) + "/api/data/v9.2/"
}

func rowPath(envID, table, id string) string {
	return DataPath(envID) + url.PathEscape(table) + "(" + url.PathEscape(id) + ")"
}

// dataDo sends a data API request with extra headers (If-Match, Prefer).
func (c *Client) dataDo(ctx context.Context, method, path string, in any, hdr http.Header, out any) (*Response, error) {
	return c.doWith(ctx, method, AudienceData, path, in, hdr, out)
}

// CreateTable creates a table in an environment.
func (c *Client) CreateTable(ctx context.Context, envID string, t DataTable) (*DataTable, error) {
	var out DataTable
	if _, err := c.dataDo(ctx, http.MethodPost, DataPath(envID)+"tables", t, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetTable returns a table's definition.
func (c *Client) GetTable(ctx context.Context, envID, name string) (*DataTable, error) {
	var out DataTable
	if _, err := c.dataDo(ctx, http.MethodGet, DataPath(envID)+"tables/"+url.PathEscape(name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTables lists an environment's tables.
func (c *Client) ListTables(ctx context.Context, envID string) ([]DataTable, error) {
	var out struct {
		Value []DataTable `json:"value"`
	}
	if _, err := c.dataDo(ctx, http.MethodGet, DataPath(envID)+"tables", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Value, nil
}

// DeleteTable deletes a table with its rows and files.
func (c *Client) DeleteTable(ctx context.Context, envID, name string) error {
	_, err := c.dataDo(ctx, http.MethodDelete, DataPath(envID)+"tables/"+url.PathEscape(name), nil, nil, nil)
	return err
}

// CreateRow creates a row; row may name its id as "<table>id".
func (c *Client) CreateRow(ctx context.Context, envID, table string, row DataRow) (DataRow, error) {
	var out DataRow
	if _, err := c.dataDo(ctx, http.MethodPost, DataPath(envID)+url.PathEscape(table), row, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetRow returns a row.
func (c *Client) GetRow(ctx context.Context, envID, table, id string) (DataRow, error) {
	var out DataRow
	if _, err := c.dataDo(ctx, http.MethodGet, rowPath(envID, table, id), nil, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func ifMatch(etag string) http.Header {
	if etag == "" {
		return nil
	}
	return http.Header{"If-Match": {etag}}
}

// UpdateRow updates the columns row names (null clears one). etag, if not
// empty, is sent as If-Match: the update fails with 412 if the row changed
// since; "*" requires the row to exist. Without it the row is created if
// missing (upsert) and the last writer wins.
func (c *Client) UpdateRow(ctx context.Context, envID, table, id string, row DataRow, etag string) (DataRow, error) {
	var out DataRow
	if _, err := c.dataDo(ctx, http.MethodPatch, rowPath(envID, table, id), row, ifMatch(etag), &out); err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteRow deletes a row with its files; etag as UpdateRow takes it.
func (c *Client) DeleteRow(ctx context.Context, envID, table, id, etag string) error {
	_, err := c.dataDo(ctx, http.MethodDelete, rowPath(envID, table, id), nil, ifMatch(etag), nil)
	return err
}

// ListRows lists a table's rows in id order, at most top of them (0 for
// all), asking for pages of pageSize (0 for the server's default) and
// following @odata.nextLink.
func (c *Client) ListRows(ctx context.Context, envID, table string, top, pageSize int) ([]DataRow, error) {
	next := DataPath(envID) + url.PathEscape(table)
	if top > 0 {
		next += "?$top=" + strconv.Itoa(top)
	}
	var hdr http.Header
	if pageSize > 0 {
		hdr = http.Header{"Prefer": {"odata.maxpagesize=" + strconv.Itoa(pageSize)}}
	}
	var all []DataRow
	for pages := 0; next != ""; pages++ {
		if pages == 100000 {
			return nil, errors.New("client: the server returned more than 100000 pages")
		}
		var page struct {
			Value    []DataRow `json:"value"`
			NextLink string    `json:"@odata.nextLink"`
		}
		if _, err := c.dataDo(ctx, http.MethodGet, next, nil, hdr, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Value...)
		next = page.NextLink
	}
	return all, nil
}

func filePath(envID, table, id, column string) string {
	return rowPath(envID, table, id) + "/" + url.PathEscape(column)
}

// UploadFile streams r (size bytes, or -1 if unknown) as the value of a
// file column. etag as UpdateRow takes it.
func (c *Client) UploadFile(ctx context.Context, envID, table, id, column string, r io.Reader, size int64, fileName, contentType, etag string) (*DataFile, error) {
	u, err := c.resolve(filePath(envID, table, id, column))
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), io.NopCloser(r))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	req.ContentLength = size
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	req.Header.Set("Content-Type", contentType)
	if fileName != "" {
		req.Header.Set("x-ms-file-name", fileName)
	}
	if etag != "" {
		req.Header.Set("If-Match", etag)
	}
	var out DataFile
	if _, err := c.send(req, AudienceData, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DownloadFile streams a file column's value into w and describes it.
func (c *Client) DownloadFile(ctx context.Context, envID, table, id, column string, w io.Writer) (*DataFile, error) {
	u, err := c.resolve(filePath(envID, table, id, column) + "/$value")
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	req.Header.Set("User-Agent", c.userAgent)
	if err := c.authorize(req, AudienceData); err != nil {
		return nil, err
	}
	resp, err := c.roundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, decodeError(resp, b, requestID(resp.Header))
	}
	f := &DataFile{FileName: resp.Header.Get("x-ms-file-name"), ContentType: resp.Header.Get("Content-Type"), ETag: resp.Header.Get("ETag")}
	f.Size, _ = strconv.ParseInt(resp.Header.Get("x-ms-file-size"), 10, 64)
	if v, ok := strings.CutPrefix(f.ETag, `W/"`); ok {
		f.Version, _ = strconv.ParseInt(strings.TrimSuffix(v, `"`), 10, 64)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return nil, fmt.Errorf("client: downloading %s: %w", req.URL.Path, unwrapURLError(err))
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return nil, fmt.Errorf("client: the download of %s ended after %d of %d bytes", req.URL.Path, n, resp.ContentLength)
	}
	return f, nil
}
