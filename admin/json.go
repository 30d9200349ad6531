package admin

import (
	"errors"

	"encoding/json"
	"github.com/keyhold/keyhold/client"
	"net/http"
)

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"unavailable"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write(b)
}

func asClientError(err error, target **client.Error) bool { return errors.As(err, target) }
