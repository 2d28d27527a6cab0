package whatsapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
)

// TypeDocument is the Send API type of a document message.
const TypeDocument = "document"

// Document limits: Meta accepts documents up to 100 MB; captions are
// limited like a media caption, filenames are kept short.
const (
	MaxDocumentSize = 100 << 20
	MaxCaption      = 1024
	MaxFilename     = 240
)

// DocumentBody is the payload of a document message: an uploaded media id
// (never a link: the file must not sit on a public URL), a filename and a
// caption.
type DocumentBody struct {
	ID       string `json:"id"`
	Filename string `json:"filename,omitempty"`
	Caption  string `json:"caption,omitempty"`
}

func (d *DocumentBody) validate() error {
	switch {
	case d == nil || d.ID == "":
		return invalid("document.id", "required")
	case runes(d.Caption) > MaxCaption:
		return invalid("document.caption", "longer than %d characters", MaxCaption)
	case runes(d.Filename) > MaxFilename || strings.ContainsAny(d.Filename, "/\\\x00"):
		return invalid("document.filename", "at most %d characters, no path", MaxFilename)
	}
	return nil
}

// NewDocument builds a document message of an uploaded media id.
func NewDocument(to, mediaID, filename, caption string) (*OutboundMessage, error) {
	m, err := newMessage(to, TypeDocument)
	if err != nil {
		return nil, err
	}
	m.Document = &DocumentBody{ID: mediaID, Filename: Truncate(filename, MaxFilename), Caption: Truncate(caption, MaxCaption)}
	return finish(m)
}

// mediaResponse is the media upload's success body.
type mediaResponse struct {
	ID string `json:"id"`
}

// UploadMedia uploads a file for a later media message: POST
// /{phone-number-id}/media, multipart with messaging_product, type (the
// MIME type) and file. It returns the media id. Errors are as for Send.
func (c *Client) UploadMedia(ctx context.Context, phoneNumberID, filename, mimeType string, data []byte) (string, error) {
	if len(data) == 0 || len(data) > MaxDocumentSize {
		return "", invalid("file", "must be 1 byte to %d bytes", MaxDocumentSize)
	}
	ep, err := c.endpoint(phoneNumberID, "media")
	if err != nil {
		return "", err
	}
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	_ = w.WriteField("messaging_product", MessagingProduct)
	_ = w.WriteField("type", mimeType)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+strings.NewReplacer(`"`, "", "\\", "", "\r", "", "\n", "").Replace(filename)+`"`)
	h.Set("Content-Type", mimeType)
	part, err := w.CreatePart(h)
	if err != nil {
		return "", err
	}
	_, _ = part.Write(data)
	if err := w.Close(); err != nil {
		return "", err
	}
	resp, err := c.doAs(ctx, http.MethodPost, ep, body.Bytes(), w.FormDataContentType())
	if err != nil {
		return "", err
	}
	var r mediaResponse
	if err := json.Unmarshal(resp, &r); err != nil || r.ID == "" {
		return "", &SendError{HTTPStatus: http.StatusOK, Reason: "malformed media upload response", Err: errors.New("no media id")}
	}
	return r.ID, nil
}
