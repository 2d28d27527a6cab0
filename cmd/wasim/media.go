package main

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sieve-broker/sieve/commerce/whatsapp"
)

// maxMediaUpload bounds a media upload the fake API accepts (Meta allows
// documents up to 100 MB; the simulator keeps them in memory).
const maxMediaUpload = 16 << 20

// Media is a file uploaded to the fake API (POST /{pnid}/media).
type Media struct {
	ID       string `json:"id"`
	MIME     string `json:"mime_type"`
	Filename string `json:"filename"`
	Data     []byte `json:"-"`
}

// addMedia stores an upload and returns its id (digits, as Meta's).
func (s *Store) addMedia(m Media) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.media == nil {
		s.media = map[string]Media{}
	}
	m.ID = strconv.Itoa(4_000_000_000 + len(s.media) + 1)
	s.media[m.ID] = m
	return m.ID
}

// mediaByID returns an upload.
func (s *Store) mediaByID(id string) (Media, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.media[id]
	return m, ok
}

// Media implements SimAPI: the file of a media id.
func (s *Store) Media(_ context.Context, id string) (Media, error) {
	m, ok := s.mediaByID(id)
	if !ok {
		return Media{}, fmt.Errorf("sim: no media %q", id)
	}
	return m, nil
}

// Media implements SimAPI with GET /_sim/media/{id}.
func (c *SimClient) Media(ctx context.Context, id string) (Media, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.BaseURL, "/")+"/_sim/media/"+url.PathEscape(id), nil)
	if err != nil {
		return Media{}, fmt.Errorf("sim: %w", err)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return Media{}, fmt.Errorf("sim: media: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Media{}, fmt.Errorf("sim: media %s: HTTP %d", id, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxMediaUpload+1))
	if err != nil {
		return Media{}, fmt.Errorf("sim: media: %w", err)
	}
	m := Media{ID: id, MIME: resp.Header.Get("Content-Type"), Data: data}
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
		m.Filename = params["filename"]
	}
	return m, nil
}

// handleMedia is the Cloud API's media upload: multipart with
// messaging_product "whatsapp", type (the MIME type) and file; it answers
// {"id": …}.
func (a *SendAPI) handleMedia(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(w, r) {
		return
	}
	if _, ok := pathOK(w, r); !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxMediaUpload+1<<20)
	if err := r.ParseMultipartForm(maxMediaUpload); err != nil {
		graphError(w, http.StatusBadRequest, 100, "Invalid parameter", "a multipart/form-data body is required")
		return
	}
	if r.FormValue("messaging_product") != whatsapp.MessagingProduct {
		graphError(w, http.StatusBadRequest, 100, "Invalid parameter", "messaging_product must be whatsapp")
		return
	}
	typ := r.FormValue("type")
	if _, _, err := mime.ParseMediaType(typ); err != nil {
		graphError(w, http.StatusBadRequest, 100, "Invalid parameter", "type must be a MIME type")
		return
	}
	f, hdr, err := r.FormFile("file")
	if err != nil {
		graphError(w, http.StatusBadRequest, 100, "Invalid parameter", "file is required")
		return
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil || len(data) == 0 {
		graphError(w, http.StatusBadRequest, 131053, "Media upload error", "empty or unreadable file")
		return
	}
	id := a.Store.addMedia(Media{MIME: typ, Filename: filepath.Base(hdr.Filename), Data: data})
	a.logf("media: %s %d bytes", id, len(data))
	writeJSON(w, http.StatusOK, map[string]string{"id": id})
}

// handleSimMedia serves an uploaded file (what a user's phone downloads).
func (a *SendAPI) handleSimMedia(w http.ResponseWriter, r *http.Request) {
	m, ok := a.Store.mediaByID(r.PathValue("id"))
	if !ok {
		simError(w, http.StatusNotFound, "no such media")
		return
	}
	w.Header().Set("Content-Type", m.MIME)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": m.Filename}))
	_, _ = w.Write(m.Data)
}

// saveDocument stores a received document in dir under its own name (no
// path), not overwriting an existing file, and returns the path.
func saveDocument(dir string, m Media) (string, error) {
	name := filepath.Base(m.Filename)
	if name == "." || name == "/" || name == "" {
		name = "document-" + m.ID
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err == nil {
		ext := filepath.Ext(name)
		path = filepath.Join(dir, strings.TrimSuffix(name, ext)+"-"+time.Now().Format("20060102-150405.000")+ext)
	}
	return path, os.WriteFile(path, m.Data, 0o600)
}
