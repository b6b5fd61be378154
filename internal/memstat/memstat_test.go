package memstat

import (
	"strings"
	"testing"
)

func TestReadStatus(t *testing.T) {
	const status = "Name:\toptin\nVmRSS:\t  850000 kB\nRssAnon:\t   20000 kB\nRssFile:\t  829000 kB\nRssShmem:\t    1000 kB\nThreads:\t9\n"
	var u Usage
	if err := u.readStatus(strings.NewReader(status)); err != nil {
		t.Fatal(err)
	}
	if u.RSS != 850000*1024 || u.RSSAnon != 20000*1024 || u.RSSFile != 829000*1024 || u.RSSShmem != 1000*1024 {
		t.Errorf("readStatus: got %+v", u)
	}
	if err := new(Usage).readStatus(strings.NewReader("Name:\toptin\nVmRSS:\t 1 kB\n")); err == nil {
		t.Error("readStatus without RssAnon: got nil error, want one")
	}
	if err := new(Usage).readStatus(strings.NewReader("VmRSS:\tlots kB\n")); err == nil {
		t.Error("readStatus of a bad number: got nil error, want one")
	}
}
