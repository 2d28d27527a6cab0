package wire

import (
	"github.com/sieve-broker/sieve/commerce"
	"github.com/sieve-broker/sieve/policies"
)

// noticeBook is the privacy notice in every shipped language, built once
// from the policy in force, the DPO contact and the issuer's address: the
// chat shows its summary, GET /privacy/{lang} its full text.
type noticeBook struct {
	ns    *policies.Notices
	pages map[string][]byte
}

var _ commerce.NoticeBook = (*noticeBook)(nil)

func newNoticeBook(p *policies.Engine, contact, issuer string) (*noticeBook, error) {
	ns, err := policies.BuildNotices(p.Data(), p.NoticeTexts(), policies.NoticeOptions{Contact: contact},
		func(lang string) string { return issuer + "/privacy/" + lang })
	if err != nil {
		return nil, err
	}
	b := &noticeBook{ns: ns, pages: map[string][]byte{}}
	for _, lang := range ns.Langs() {
		b.pages[lang] = ns.Get(lang).HTML()
	}
	return b, nil
}

// Notice implements commerce.NoticeBook.
func (b *noticeBook) Notice(lang string) commerce.NoticeInfo {
	n := b.ns.Get(lang)
	return commerce.NoticeInfo{Lang: n.Lang, SHA256: n.SHA256, Title: n.Title, Summary: n.Summary, Short: n.Short}
}

// page is the full notice in lang, for GET /privacy/{lang}.
func (b *noticeBook) page(lang string) ([]byte, bool) {
	p, ok := b.pages[lang]
	return p, ok
}
