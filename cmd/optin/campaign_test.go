package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestCLICampaignStatus shows a campaign's status through the admin
// socket while the service runs, and from the database file once it is
// stopped.
func TestCLICampaignStatus(t *testing.T) {
	path, cfg := writeConfig(t)
	base, stop := startApp(t, cfg)
	body := `{"name":"Wake up","topic":"news","templates":{"en":{"subject":"Still there?","body":"Hello."}}}`
	req, err := http.NewRequest("POST", base+"/api/v1/campaigns", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ ID string }
	err = json.NewDecoder(res.Body).Decode(&c)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %v", res.StatusCode, err)
	}
	for _, when := range []string{"serving", "stopped"} {
		out, err := runCLI(t, "campaign", "status", "--config", path, c.ID)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if !strings.Contains(out, "campaign "+c.ID+" (Wake up), topic news: draft") || !strings.Contains(out, "targeted 0  sent 0") {
			t.Errorf("%s: output:\n%s", when, out)
		}
		stop()
	}
	if _, err := runCLI(t, "campaign", "status", "--config", path, "nope"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown campaign: got %v", err)
	}
	if _, err := runCLI(t, "campaign", "start", c.ID); err == nil {
		t.Error("campaign start: got nil error, want usage")
	}
}
